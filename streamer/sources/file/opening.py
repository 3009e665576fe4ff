"""Opening and closing a FileSource's files (a mixin of FileSource: it shares the
source's state): by identity, within the `max_open_files` slots, from the saved
offset when the file is the one checkpointed (inode and first bytes)."""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING

from streamer.core.ack import OrderedCommitter
from streamer.sources.file.checkpoint import contents_of
from streamer.sources.file.identity import fingerprint, open_by_identity
from streamer.sources.file.tailed import TailedFile

if TYPE_CHECKING:
    from streamer.sources.file.source import FileSource

log = logging.getLogger("streamer.source.file")
# the first bytes of compressed files: never NDJSON text (which starts with `{`, a BOM or
# blanks); such a file is unread (named, exit 1), not read as lines of garbage
COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"),
              (b"\xfd7zXZ\x00", "xz"), (b"\x04\x22\x4d\x18", "lz4"),
              (b"PK\x03\x04", "zip"))


def refuse_compressed(fd: int) -> None:
    """Raise the OSError UnreadableFiles reports when the file is compressed."""
    head = os.pread(fd, 6, 0)
    bzip2 = head[:3] == b"BZh" and head[3:4].isdigit()
    kind = "bzip2" if bzip2 else next((k for magic, k in COMPRESSED if head.startswith(magic)),
                                      None)
    if kind is not None:
        raise OSError(errno.EINVAL, f"compressed ({kind}): streamer reads NDJSON text; "
                      "decompress it (e.g. zcat) or keep it out of the glob")


class FileOpening:
    """The descriptor half of FileSource."""

    def _close(self: FileSource, tail: TailedFile) -> None:
        if tail.fd >= 0:
            os.close(tail.fd)
            tail.fd = -1
            self._open_files.release()

    def _open(self: FileSource, tail: TailedFile) -> int | None:
        """Open the file by identity (a slot is held); the offset to read from,
        or None when the file is nowhere to be found (or another file now)."""
        found = open_by_identity(tail.path, tail.key)
        if found is None:
            self._open_files.release()
            return None
        tail.fd, path = found
        if path != tail.path:
            log.info("%s is now %s (rotated); reading it on from offset %d", tail.path, path,
                     tail.committer.committed)
            tail.path = path
            tail.rotated = True
        if not tail.known:
            refuse_compressed(tail.fd)
            offset = self._first_offset(tail)
            tail.fp, tail.fp_len = fingerprint(tail.fd)
            tail.committer = OrderedCommitter(offset, self._advanced)
            tail.known = True
            self._dirty = True
            self._activity.opened(tail.path, offset)
            return offset
        if fingerprint(tail.fd, tail.fp_len)[0] != tail.fp:
            self._close(tail)
            return None
        return tail.committer.committed

    def _first_offset(self: FileSource, tail: TailedFile) -> int:
        """The saved offset when this is the same file (inode and first bytes)."""
        size = os.fstat(tail.fd).st_size
        retired = self._retired.pop(tail.key, None)
        saved = self._saved.pop(tail.key, None)
        for known in (saved, retired.checkpoint() if retired is not None else None):
            if known is None:
                continue
            # copytruncate: contents before the file's current one, read from their copies
            *earlier, last = contents_of(known)
            fp, _ = fingerprint(tail.fd, last["fp_len"])
            if fp == last["fp"] and last["offset"] <= size:
                tail.gen = last["gen"]
                tail.earlier = [self._queued(content) for content in earlier]
                return last["offset"]
        if saved is not None and not saved.get("done"):
            # shorter than its checkpoint, or other first bytes: truncated (copytruncate)
            # while stopped; a new stream from 0, after the old contents' ends from copies
            contents = contents_of(saved)
            tail.earlier = [self._queued(content) for content in contents]
            tail.gen = contents[-1]["gen"] + 1
            return 0
        return min(tail.start, size)

    async def _open_when_readable(self: FileSource, tail: TailedFile) -> int | None:
        return await self._unreadable.open(tail, self._open, self._open_files,
                                           self._cfg.glob_interval_ms / 1000)

    def _lost(self: FileSource, tail: TailedFile, position: int) -> None:
        log.warning("%s (device %d, inode %d) is not at its path nor under another name in "
                    "its directory (deleted or compressed away): what it held after offset "
                    "%d, if anything, is lost", tail.path, tail.dev, tail.ino, position)
        self._tails.pop(tail.key, None)
        self._dirty = True
