"""copytruncate (a mixin of FileSource): a truncated file's old content is read on from
its copy, and the file's new content is read from 0 right after, without waiting for
the old one's acknowledgements: each content has its own (Content, its committer), and
the checkpoint names every content not acknowledged yet (tailed.py `checkpoint`), so a
stop or a crash resumes each from its copy, in order. Also for a file truncated while
the process was stopped (opening.py `_first_offset` queues its contents).

Before 2026-12-05 the source waited for a content's acks (up to a stage file's
`max_file_age_s`) before it read the next, and the checkpoint named one content:
rotations faster than that left contents queued in copies that a stop lost."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from streamer.core.ack import OrderedCommitter
from streamer.sources.file.checkpoint import ContentEntry
from streamer.sources.file.identity import FINGERPRINT_BYTES, find_copy, fingerprint
from streamer.sources.file.tailed import Content, TailedFile
from streamer.sources.splitter import LineSplitter

if TYPE_CHECKING:
    from streamer.sources.file.source import FileSource

log = logging.getLogger("streamer.source.file")


class CopyTruncation:
    """The copytruncate half of FileSource (a mixin: it shares the source's state)."""

    def _queued(self: FileSource, known: ContentEntry) -> Content:
        """A checkpointed content, to be read from its copy from its offset."""
        offset = known["offset"]
        return Content(known["fp"], known["fp_len"], known["gen"],
                       OrderedCommitter(offset, self._advanced), position=offset)

    def _truncated_at(self: FileSource, tail: TailedFile, splitter: LineSplitter,
                      position: int) -> None:
        """The current content was truncated after `position`: it is read on from its
        copy (the splitter holds the line begun), and the file's content from 0 is
        the current one."""
        tail.earlier.append(Content(tail.fp, tail.fp_len, tail.gen, tail.committer,
                                    tail.stream, position, splitter))
        self._next_content(tail)

    def _next_content(self: FileSource, tail: TailedFile) -> None:
        tail.fp, tail.fp_len = fingerprint(tail.fd)
        tail.gen, tail.stream = tail.gen + 1, None
        tail.committer = OrderedCommitter(0, self._advanced)
        self._dirty = True

    def _note_content(self: FileSource, tail: TailedFile) -> None:
        """While copies are read, follow the file: its current content's first bytes
        are taken again as it grows (found truncated, the file is mostly empty), and
        when the file starts otherwise, the content was copy-truncated again: it is
        queued, read from its own copy in turn. Only a content written and truncated
        away between two looks is not known by its first bytes."""
        if fingerprint(tail.fd, tail.fp_len)[0] != tail.fp:
            offset = tail.committer.committed  # not read from the file yet
            tail.earlier.append(Content(tail.fp, tail.fp_len, tail.gen, tail.committer,
                                        tail.stream, offset))
            self._next_content(tail)
        elif tail.fp_len < FINGERPRINT_BYTES:
            tail.fp, tail.fp_len = fingerprint(tail.fd)

    async def _read_earlier(self: FileSource, tail: TailedFile, at_start: bool) -> None:
        """Every queued content from its copy, oldest first (a content truncated
        again meanwhile is queued behind), back to back; then the file's."""
        index = 0
        while index < len(tail.earlier):
            content = tail.earlier[index]
            index += 1
            if content.read:
                continue
            if not await self._read_copy(tail, content) and at_start:
                log.warning("%s was truncated while streamer was stopped (or is a new file "
                            "on the old one's inode) and no file of its directory is a copy "
                            "of it: what it held after offset %d, if anything, is lost",
                            tail.path, content.position)
            content.read, content.splitter = True, None
            self._dirty = True
        self._note_content(tail)
        tail.earlier = [content for content in tail.earlier if content.pending]
        if at_start:
            log.info("reading %s again from offset %d (truncated)", tail.path,
                     tail.committer.committed)

    async def _read_copy(self: FileSource, tail: TailedFile, content: Content) -> bool:
        """copytruncate: what was not read of `content` is in its copy (lines written
        between the copy and the truncation are in no file: lost); False when no
        copy is found."""
        position = content.position
        found = find_copy(os.path.dirname(tail.path), tail.key, content.fp, content.fp_len,
                          position)
        if found is None:
            return False
        fd, path = found
        log.info("%s was copied to %s, then truncated: reading the copy from offset %d",
                 tail.path, path, position)
        if content.stream is None:  # nothing emitted before: the stream of the copy's head
            content.stream = self._stream_key(tail, complete=False, fd=fd, gen=content.gen)
        splitter = content.splitter or LineSplitter(position, self._cfg.max_line_bytes)
        try:
            while size := self._pread(fd, self._cfg.read_bytes, position):
                position += size
                self._fanout.stats.bytes += size
                await self._emit(tail, *splitter.feed_from(self._read_buffer, size), content)
                self._note_content(tail)
                await asyncio.sleep(0)
            await self._emit(tail, *splitter.finish(), content)
        finally:
            os.close(fd)
        return True
