"""Files a file source finds but cannot open (no read permission, an I/O error).

Such a file is not gone: it is said once by name and error (again only when the
error changes), kept in the source's stats (`/health`, the summary) until it
opens, and its checkpoint entry is kept meanwhile, so once it is readable it is
read on from where it was, never again from 0.  While following it is tried
again every glob round; a one-shot run leaves it and exits 1 (app.py)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from streamer.observability.metrics import SourceStats
from streamer.sources.file.checkpoint import FileKey
from streamer.sources.file.open_files import OpenFiles
from streamer.sources.file.tailed import TailedFile

log = logging.getLogger("streamer.source.file")
UNREAD = -1  # `open`: found, not readable, left by a one-shot run


class UnreadableFiles:
    def __init__(self, source: str, stats: SourceStats, follow: bool) -> None:
        self._source = source
        self._stats = stats
        self._follow = follow
        self._unread: dict[FileKey, tuple[str, str]] = {}  # path, reason

    async def open(self, tail: TailedFile, open_file: Callable[[TailedFile], int | None],
                   slots: OpenFiles, retry_s: float) -> int | None:
        """`open_file(tail)` (a slot is held): the offset to read from, None when
        the file is gone; while it is there but does not open, tried again every
        `retry_s` when following (no slot held meanwhile), UNREAD in a one-shot run."""
        while True:
            try:
                offset = open_file(tail)
            except OSError as exc:  # also a read of its first bytes that failed
                if tail.fd >= 0:
                    os.close(tail.fd)
                    tail.fd = -1
                slots.release()
                self.failed(tail.key, tail.path, exc)
                if not self._follow:
                    return UNREAD
                await asyncio.sleep(retry_s)
                await slots.acquire()
                continue
            if offset is None:
                self.forget(tail.key)
            else:
                self.opened(tail.key, tail.path)
            return offset

    def failed(self, key: FileKey, path: str, exc: OSError) -> None:
        reason = exc.strerror or type(exc).__name__
        if self._unread.get(key) != (path, reason):
            self.forget(key)
            log.warning("source %s: cannot read %s: %s; %s", self._source, path, reason,
                        "tried again every glob round" if self._follow
                        else "not read by this run (exit 1); the next run reads it")
        self._unread[key] = (path, reason)
        self._stats.unread[path] = reason

    def opened(self, key: FileKey, path: str) -> None:
        if self.forget(key):
            log.info("source %s: %s can be read now; reading it", self._source, path)

    def forget(self, key: FileKey) -> bool:
        """Not unreadable any more (opened, or gone); whether it was."""
        known = self._unread.pop(key, None)
        if known is None:
            return False
        self._stats.unread.pop(known[0], None)
        return True

    def report_end(self) -> None:
        """A one-shot run's last word on them."""
        if self._stats.unread:
            log.error("source %s: %d file(s) could not be read: %s", self._source,
                      len(self._stats.unread),
                      ", ".join(f"{p} ({r})" for p, r in self._stats.unread.items()))
