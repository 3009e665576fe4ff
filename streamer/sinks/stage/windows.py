"""Load windows: closed stage files grouped for one load job each.

A window opens (journaled) when its first file is started.  Each file takes
its name (part-NNNNN) from the window when it starts, because an S3 object's
key is fixed when its upload begins.  A window is sealed (no new files) by
file count, bytes or age; it closes once every file it handed a name to is
complete, and is then loaded once by the configured loader.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from streamer.core.retry import Backoff
from streamer.loaders.base import Loader, PermanentLoadError
from streamer.network.certificates import certificate_rejected
from streamer.observability.metrics import SinkStats
from streamer.sinks.stage.journal import Journal, Window

log = logging.getLogger("streamer.sink.windows")

__all__ = ["Loader", "WindowKeeper"]

LOAD_BACKOFF_INITIAL_S = 1.0
LOAD_BACKOFF_MAX_S = 60.0
JOURNAL_RETRY_S = 0.1  # a journal the disk refuses: tried again after this, doubling
JOURNAL_RETRY_MAX_S = 2.0


class JournalBehind(OSError):
    """A load's progress (its id, before the job is created) was not journaled."""


class WindowKeeper:
    def __init__(self, sink: str, instance: str, journal: Journal, loader: Loader | None,
                 stats: SinkStats, *, max_files: int, max_bytes: int, max_age_s: float,
                 load_backoff: Backoff | None = None, exactly_once: bool = False) -> None:
        self._sink = sink
        self._instance = instance
        self._journal = journal
        self._loader = loader
        self._stats = stats
        self._max_files = max_files
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        # journaled with the window: a restart closes it from its completion records
        self._opening = {"exactly_once": True} if exactly_once else {}
        self.current: Window | None = None
        self._opened_at = 0.0
        self._last_us = 0
        self._named: dict[str, int] = {}  # window id -> file names handed out
        self._outstanding: dict[str, int] = {}  # window id -> named files not yet added
        self._sealed: dict[str, Window] = {}  # take no new files; close when complete
        self._queue: asyncio.Queue[Window | None] = asyncio.Queue()
        self._journal_wait = asyncio.Lock()
        self.loading: Window | None = None
        # a failed load is retried after this backoff (the next window starts afresh)
        self._load_backoff = load_backoff or Backoff(LOAD_BACKOFF_INITIAL_S, LOAD_BACKOFF_MAX_S)

    async def journaled(self) -> None:
        """Wait until every journal event is on disk: what an event announces (a file
        moved into its window, acks released, a load started, staged files deleted)
        is done only after it.  A disk that refuses it (data_dir full) holds the sink
        here -- its sources wait on its full buffer -- with one WARNING and the sink
        degraded in /health, until space is freed."""
        if not self._journal.behind:
            return
        async with self._journal_wait:  # one waiter logs; the others find it written
            if self._journal.flush():
                return
            path, started, delay = self._journal.path, time.monotonic(), JOURNAL_RETRY_S
            self._stats.failed(f"journal {path}: {self._journal.write_error}", refused=True)
            log.warning("stage sink %s: journal %s cannot be written (%s); the sink waits "
                        "until it can (nothing it wrote since is acknowledged)",
                        self._sink, path, self._journal.write_error)
            while not self._journal.flush():
                await asyncio.sleep(delay)
                delay = min(delay * 2, JOURNAL_RETRY_MAX_S)
            self._stats.recovered()
            log.info("stage sink %s: journal %s written again after %.1fs; the sink goes on",
                     self._sink, path, time.monotonic() - started)

    # -- the open window -----------------------------------------------------------
    def new_id(self) -> str:
        """UTC time to the microsecond + instance: unique and sortable per instance."""
        now_us = time.time_ns() // 1000
        us = max(now_us, self._last_us + 1)
        self._last_us = us
        stamp = datetime.fromtimestamp(us // 1_000_000, UTC)
        return f"{stamp:%Y%m%dT%H%M%S}{us % 1_000_000:06d}Z-{self._instance}"

    def ensure_open(self) -> Window:
        if self.current is None:
            window = Window(self.new_id())
            self._journal.record(window, state="open", **self._opening)
            self.current = window
            self._opened_at = time.monotonic()
            self._stats.count("windows_opened")
        return self.current

    def name_file(self, suffix: str = ".csv", stem: str | None = None) -> tuple[Window, str]:
        """The window and name for a file being started (part-NNNNN, or part-<stem>);
        the file must come back through add_file (or the window never closes)."""
        window = self.ensure_open()
        number = self._named.get(window.id, 0) + 1
        self._named[window.id] = number
        self._outstanding[window.id] = self._outstanding.get(window.id, 0) + 1
        if number >= self._max_files:
            self.seal_current()
        return window, f"part-{stem or f'{number:05d}'}{suffix}"

    def add_file(self, name: str, size: int, records: int,
                 window: Window | None = None) -> None:
        """A complete file (window: the one name_file gave; default the open one)."""
        window = window or self.ensure_open()
        window.files.append(name)
        window.bytes += size
        window.records += records
        if self._outstanding.get(window.id, 0) > 0:
            self._outstanding[window.id] -= 1
        if window is self.current and (len(window.files) >= self._max_files
                                       or window.bytes >= self._max_bytes):
            self.seal_current()
        self._close_if_complete(window)

    def abandon(self, window: Window) -> None:
        """A named file that will never be added (abandoned: its stream moved away)."""
        if self._outstanding.get(window.id, 0) > 0:
            self._outstanding[window.id] -= 1
        self._close_if_complete(window)

    def deadline(self) -> float | None:
        return self._opened_at + self._max_age_s if self.current is not None else None

    def seal_current(self) -> None:
        window, self.current = self.current, None
        if window is not None:
            self._sealed[window.id] = window
            self._close_if_complete(window)


    def _close_if_complete(self, window: Window) -> None:
        if window.id in self._sealed and not self._outstanding.get(window.id):
            del self._sealed[window.id]
            self._named.pop(window.id, None)
            self._outstanding.pop(window.id, None)
            self.close(window, sorted(window.files))

    def close(self, window: Window, files: list[str]) -> None:
        if not files:
            self._journal.record(window, state="staged", files=[], records=0, bytes=0)
            return
        self._journal.record(window, state="closed", files=files, records=window.records,
                             bytes=window.bytes)
        self._stats.count("windows_closed")
        self._queue_load(window)

    def resume(self, window: Window) -> None:
        """A window found unfinished in the journal after a restart."""
        self._queue_load(window)

    def _queue_load(self, window: Window) -> None:
        if self._loader is not None:
            self._stats.unloaded_windows[window.id] = "closed"
        self._queue.put_nowait(window)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def sealed(self) -> int:
        """Windows waiting for files still being completed."""
        return len(self._sealed)

    # -- loading -------------------------------------------------------------------
    def finish(self) -> None:
        """No more windows will be closed: the load runner stops when drained."""
        self._queue.put_nowait(None)

    async def run_loads(self, paths) -> None:
        while (window := await self._queue.get()) is not None:
            if self._loader is None:
                self._journal.record(window, state="staged")
                continue
            await self._load(window, paths(window))

    async def _load(self, window: Window, files: list[str]) -> None:
        self.loading = window
        backoff = self._load_backoff
        self._journal.record(window, state="loading")
        self._stats.unloaded_windows[window.id] = "loading"
        while True:
            await self.journaled()  # the window's `loading` (and a failed attempt's id)
            started = time.monotonic()
            try:
                result = await self._loader.load(window, files, self._progress(window))
            except PermanentLoadError as exc:
                self._stats.unloaded_windows.pop(window.id, None)
                self._failed(window, files, str(exc))
                break
            except Exception as exc:
                self._stats.failed(f"load: {exc}", refused=certificate_rejected(exc))
                if certificate_rejected(exc):  # a one-shot run gives up at once
                    self._stats.hopeless = f"load: {exc}"
                self._stats.retried += 1
                delay = backoff.failure()
                log.warning("loading window %s of sink %s failed (%s); retrying in %.1fs",
                            window.id, self._sink, exc, delay)
                await backoff.wait()
                continue
            self._stats.recovered()
            self._journal.record(window, state="loaded", **result)
            self._stats.unloaded_windows.pop(window.id, None)
            await self.journaled()  # `loaded` on disk before its files may be deleted
            await self._discard_staged([window], lambda _: files)
            self._stats.failed_windows.pop(window.id, None)  # a retried window
            self._stats.count("windows_loaded")
            self._stats.count("rows_loaded", int(result.get("rows", 0)))
            if result.get("rows_rejected"):
                self._stats.count("rows_rejected", int(result["rows_rejected"]))
            log.info("loaded window %s of sink %s: %s rows in %.2fs", window.id, self._sink,
                     result.get("rows"), time.monotonic() - started)
            break
        backoff.success()
        self.loading = None

    async def _discard_staged(self, windows: list[Window], paths) -> None:
        """Loaders that delete what they loaded (DuckDB's `delete_staged`) do it here:
        after `loaded` is journaled, never before."""
        discard = getattr(self._loader, "discard_staged", None)
        if discard is not None:
            for window in windows:
                await discard(paths(window))

    async def discard_loaded(self, windows: list[Window], paths) -> None:
        """At start: the files of windows journaled `loaded` that a crash (or an earlier
        run without deleting) left staged."""
        await self._discard_staged([w for w in windows if w.state == "loaded"], paths)

    def _failed(self, window: Window, files: list[str], cause: str) -> None:
        """A window no retry can load: journaled `failed`, reported, and skipped, so the
        windows after it still load; `streamer loads retry` gives it another go."""
        where = f"{len(files)} files: {files[0]}" + (", ..." if len(files) > 1 else "") \
            if files else "no files"
        error = f"window {window.id} of sink {self._sink} ({where}) failed: {cause}"
        log.error("%s; its files stay staged, later windows load on "
                  "(`streamer loads retry` tries it again)", error)
        self._journal.record(window, state="failed", error=error)
        self._stats.recovered()  # the sink goes on: degraded, no longer retrying
        self._stats.failed_windows[window.id] = error
        self._stats.count("windows_failed")

    def known_failed(self, windows: list[Window]) -> None:
        """Failed windows of earlier runs, still failed: shown in /health and metrics."""
        for window in windows:
            self._stats.failed_windows[window.id] = str(window.info.get("error", "failed"))
        if windows:
            log.warning("sink %s has %d failed load windows from earlier runs (%s); "
                        "`streamer loads retry` loads them again", self._sink, len(windows),
                        ", ".join(w.id for w in windows[:5]))

    def _progress(self, window: Window):
        def record(**changes: Any) -> None:
            self._journal.record(window, **changes)
            if self._journal.behind:  # a load's id must be on disk before its job exists
                raise JournalBehind(f"journal {self._journal.path}: "
                                    f"{self._journal.write_error}")
        return record
