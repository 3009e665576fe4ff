"""The file source's INFO line about the files it reads: the first file at once,
then one line per interval (files opened and finished, the first few new ones
named with their offsets) instead of one per file, so a glob over thousands of
small files does not flood the log.  Each file's own line is DEBUG; WARNINGs stay
per file."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("streamer.source.file")

REPORT_EVERY_S = 5.0
NAMED = 3  # new files named in a line; the rest are counted


class FileActivity:
    def __init__(self, source: str) -> None:
        self._source = source
        self.opened_count = 0
        self.finished_count = 0
        self._new: list[str] = []  # the first NAMED files opened since the last line
        self._new_count = 0
        self._finished_reported = 0
        self._reported_at = -REPORT_EVERY_S

    def opened(self, path: str, offset: int) -> None:
        log.debug("reading %s from offset %d", path, offset)
        self.opened_count += 1
        self._new_count += 1
        if len(self._new) < NAMED:
            self._new.append(f"{path} from offset {offset}")
        if self.opened_count == 1:  # the run's first file: said at once
            self.report(final=True)

    def finished(self) -> None:
        self.finished_count += 1

    def report(self, final: bool = False) -> None:
        """The line, when files were opened or finished since the last one and
        REPORT_EVERY_S passed (or `final`: the source's end)."""
        now = time.monotonic()
        if not final and now - self._reported_at < REPORT_EVERY_S:
            return
        if not self._new_count and self.finished_count == self._finished_reported:
            return
        self._reported_at = now
        counts = (f"{self.opened_count} file{'s' if self.opened_count != 1 else ''} opened, "
                  f"{self.finished_count} finished so far")
        if self._new_count:
            more = self._new_count - len(self._new)
            log.info("source %s: reading %s%s (%s)", self._source, ", ".join(self._new),
                     f" and {more} more" if more else "", counts)
        else:
            log.info("source %s: %s", self._source, counts)
        self._new, self._new_count = [], 0
        self._finished_reported = self.finished_count
