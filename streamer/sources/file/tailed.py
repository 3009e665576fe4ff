"""One tailed file's state, and what its end of file means: grown,
unchanged, truncated (copytruncate) or gone (rotated away)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from streamer.core.ack import OrderedCommitter
from streamer.sources.file.checkpoint import ContentEntry, FileEntry, FileKey
from streamer.sources.file.identity import FINGERPRINT_BYTES, fingerprint
from streamer.sources.splitter import LineSplitter


@dataclass
class Content:
    """A content the file held before its current one (copytruncate): read from its
    copy, from `position` on (`splitter` holds a line begun in the file), with its own
    acknowledgements; kept in the checkpoint until it is read and acknowledged."""
    fp: str
    fp_len: int
    gen: int
    committer: OrderedCommitter
    stream: str | None = None
    position: int = 0
    splitter: LineSplitter | None = None
    read: bool = False  # read to its end (or no copy of it found)

    @property
    def pending(self) -> bool:
        return not self.read or self.committer.in_flight > 0

    def entry(self) -> ContentEntry:
        return {"fp": self.fp, "fp_len": self.fp_len, "offset": self.committer.committed,
                "gen": self.gen}


@dataclass
class TailedFile:
    path: str
    dev: int
    ino: int
    fp: str
    fp_len: int
    committer: OrderedCommitter
    fd: int = -1
    task: asyncio.Task | None = None
    known: bool = False  # fingerprint and offset known (opened once, or from the checkpoint)
    rotated: bool = False  # not at a globbed path: read to its end, then retired
    start: int = 0  # where a file without a checkpoint is read from
    end: int = -1  # where reading stopped, once retired
    gen: int = 0  # truncations seen (copytruncate): a new stream each time
    stream: str | None = None  # the stream key (stream_key.py), once the first line is known
    # contents before the current one (copytruncate), oldest first: read from their copies
    earlier: list[Content] = field(default_factory=list)

    @property
    def key(self) -> FileKey:
        return (self.dev, self.ino)

    def current(self) -> ContentEntry:
        return {"fp": self.fp, "fp_len": self.fp_len, "offset": self.committer.committed,
                "gen": self.gen}

    def checkpoint(self) -> FileEntry:
        """Its entry: the oldest content not read and acknowledged yet, then the later
        ones (`then`), the current one last; a restart resumes each in order."""
        contents = [c.entry() for c in self.earlier if c.pending] + [self.current()]
        first = contents[0]
        entry: FileEntry = {"path": self.path, "dev": self.dev, "ino": self.ino,
                            "fp": first["fp"], "fp_len": first["fp_len"],
                            "offset": first["offset"]}
        if len(contents) == 1 and 0 <= self.end <= self.committer.committed:
            entry["done"] = True
        if first["gen"]:
            entry["gen"] = first["gen"]
        if len(contents) > 1:
            entry["then"] = contents[1:]
        return entry


def state_at_end(tail: TailedFile, position: int) -> str:
    """At end of file: 'grew', 'ok', 'truncated' (copytruncate) or 'gone'
    (rotated away: renamed or deleted)."""
    size = os.fstat(tail.fd).st_size
    if size < position:
        return "truncated"
    # the head also when the size did not change: copy-truncated and rewritten up to
    # our offset (before 2026-12-05 not seen until it grew: copytruncates meanwhile lost)
    if fingerprint(tail.fd, tail.fp_len)[0] != tail.fp:
        return "truncated"  # truncated and rewritten up to or past our offset
    if tail.fp_len < FINGERPRINT_BYTES and size > tail.fp_len:
        tail.fp, tail.fp_len = fingerprint(tail.fd)
    if size > position:
        return "grew"
    if tail.rotated:
        return "gone"
    try:
        st = os.stat(tail.path)
    except OSError:
        return "gone"
    return "ok" if (st.st_dev, st.st_ino) == tail.key else "gone"
