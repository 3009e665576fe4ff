"""copytruncate (a mixin of FileSource): the unread end of a truncated file's old
content is found in its copy and read from there, and the file is read from 0
again only once every chunk of the old content is acknowledged; also for a file
truncated while the process was stopped."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from streamer.core.ack import OrderedCommitter
from streamer.sources.file.checkpoint import FileEntry
from streamer.sources.file.identity import FINGERPRINT_BYTES, find_copy, fingerprint
from streamer.sources.file.tailed import TailedFile
from streamer.sources.splitter import LineSplitter

if TYPE_CHECKING:
    from streamer.sources.file.source import FileSource

log = logging.getLogger("streamer.source.file")


class CopyTruncation:
    """The copytruncate half of FileSource (a mixin: it shares the source's state)."""

    async def _finish_truncated(self: FileSource, tail: TailedFile, known: FileEntry) -> None:
        """A file truncated while the process was stopped: the old content's end,
        from its checkpoint on, is read from the copy as it would have been
        while running; then the file from 0 (the state `_open` gave it)."""
        position = known["offset"]
        tail.committer = OrderedCommitter(position, self._advanced)
        tail.gen, tail.fp, tail.fp_len = known.get("gen", 0), known["fp"], known["fp_len"]
        tail.stream = None
        splitter = LineSplitter(position, self._cfg.max_line_bytes)
        if not await self._after_truncation(tail, splitter, position):
            log.warning("%s was truncated while streamer was stopped (or is a new file on "
                        "the old one's inode) and no file of its directory is a copy of it: "
                        "what it held after offset %d, if anything, is lost", tail.path,
                        position)
        log.info("reading %s again from offset 0 (truncated)", tail.path)

    async def _after_truncation(self: FileSource, tail: TailedFile, splitter: LineSplitter,
                                position: int) -> bool:
        """The content `tail` names was truncated after `position`: its end is read
        from the copy, and once every chunk of it is acknowledged (the checkpoint
        names it until then: a crash reads it again from the copy) `tail` names
        the file's content from 0.  Each content the file held meanwhile is read
        from its own copy when it was truncated again before that.  Whether the
        first copy was found."""
        first = None
        heads = [fingerprint(tail.fd)]  # the contents seen after it, oldest first
        while True:
            found = await self._finish_from_copy(tail, splitter, position)
            first = found if first is None else first
            while tail.committer.in_flight:
                await asyncio.sleep(self._cfg.poll_interval_ms / 1000)
                _note_content(tail.fd, heads)
            _note_content(tail.fd, heads)
            tail.committer = OrderedCommitter(0, self._advanced)
            tail.gen, tail.stream, tail.fp, tail.fp_len = tail.gen + 1, None, *heads.pop(0)
            self._dirty = True
            if not heads:
                if fingerprint(tail.fd, tail.fp_len)[0] == tail.fp:
                    return first
                heads.append(fingerprint(tail.fd))  # truncated again just now
            splitter, position = LineSplitter(0, self._cfg.max_line_bytes), 0

    async def _finish_from_copy(self: FileSource, tail: TailedFile, splitter: LineSplitter,
                                position: int) -> bool:
        """copytruncate: what was not read yet is in the copy (lines written
        between the copy and the truncation are in no file: lost); False when
        no copy is found."""
        found = find_copy(os.path.dirname(tail.path), tail.key, tail.fp, tail.fp_len, position)
        if found is None:
            return False
        fd, path = found
        log.info("%s was copied to %s, then truncated: reading the copy from offset %d",
                 tail.path, path, position)
        if tail.stream is None:  # nothing emitted before: the stream of the copy's head
            tail.stream = self._stream_key(tail, complete=False, fd=fd)
        try:
            while size := self._pread(fd, self._cfg.read_bytes, position):
                position += size
                self._fanout.stats.bytes += size
                await self._emit(tail, *splitter.feed_from(self._read_buffer, size))
                await asyncio.sleep(0)
            await self._emit(tail, *splitter.finish())
        finally:
            os.close(fd)
        return True


def _note_content(fd: int, heads: list[tuple[str, int]]) -> None:
    """Follow the file's contents while the copy's lines wait for their acks: the last
    one's first bytes are taken again as it grows (found truncated, the file is mostly
    empty), and a content that starts otherwise (truncated again) is a new one, read
    from its own copy in turn. Before 2026-12-05 one head was taken, mostly of an empty
    file, which matched whatever the file held after the wait: a content copy-truncated
    meanwhile was lost (and the current one read twice)."""
    fp, fp_len = heads[-1]
    if fingerprint(fd, fp_len)[0] != fp:
        heads.append(fingerprint(fd))
    elif fp_len < FINGERPRINT_BYTES:
        heads[-1] = fingerprint(fd)
