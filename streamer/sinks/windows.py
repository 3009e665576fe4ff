"""Load windows: closed stage files grouped for one load job each.

A window opens (journaled) before its first file is moved in, closes by
file count, bytes or age, and is then loaded once by the configured loader.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from streamer.journal import Journal, Window
from streamer.loaders.duckdb import PermanentLoadError
from streamer.metrics import SinkStats

log = logging.getLogger("streamer.sink.windows")


class Loader(Protocol):
    async def load(self, window: Window, files: list[str], progress) -> dict[str, Any]: ...


class WindowKeeper:
    def __init__(self, sink: str, instance: str, journal: Journal, loader: Loader | None,
                 stats: SinkStats, *, max_files: int, max_bytes: int, max_age_s: float) -> None:
        self._sink = sink
        self._instance = instance
        self._journal = journal
        self._loader = loader
        self._stats = stats
        self._max_files = max_files
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        self.current: Window | None = None
        self._opened_at = 0.0
        self._last_id = ""
        self._queue: asyncio.Queue[Window | None] = asyncio.Queue()
        self.loading: Window | None = None

    # -- the open window -----------------------------------------------------------
    def new_id(self) -> str:
        window_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}Z-{self._instance}"
        if window_id <= self._last_id:
            window_id = f"{self._last_id}x"
        self._last_id = window_id
        return window_id

    def ensure_open(self) -> Window:
        if self.current is None:
            window = Window(self.new_id())
            self._journal.record(window, state="open")
            self.current = window
            self._opened_at = time.monotonic()
            self._stats.count("windows_opened")
        return self.current

    def add_file(self, name: str, size: int, records: int) -> None:
        window = self.current
        window.files.append(name)
        window.bytes += size
        window.records += records
        if len(window.files) >= self._max_files or window.bytes >= self._max_bytes:
            self.close_current()

    def deadline(self) -> float | None:
        return self._opened_at + self._max_age_s if self.current is not None else None

    def close_current(self) -> None:
        window, self.current = self.current, None
        if window is None:
            return
        self.close(window, window.files)

    def close(self, window: Window, files: list[str]) -> None:
        if not files:
            self._journal.record(window, state="staged", files=[], records=0, bytes=0)
            return
        self._journal.record(window, state="closed", files=files, records=window.records,
                             bytes=window.bytes)
        self._stats.count("windows_closed")
        self._queue.put_nowait(window)

    def resume(self, window: Window) -> None:
        """A window found unfinished in the journal after a restart."""
        self._queue.put_nowait(window)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

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
        delay = 1.0
        self._journal.record(window, state="loading")
        while True:
            started = time.monotonic()
            try:
                result = await self._loader.load(window, files, self._progress(window))
            except PermanentLoadError as exc:
                log.error("window %s of sink %s cannot be loaded: %s (its files stay staged)",
                          window.id, self._sink, exc)
                self._journal.record(window, state="failed", error=str(exc))
                self._stats.count("windows_failed")
                break
            except Exception as exc:
                self._stats.failed(f"load: {exc}")
                self._stats.retried += 1
                log.warning("loading window %s of sink %s failed (%s); retrying in %.1fs",
                            window.id, self._sink, exc, delay)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 60.0)
                continue
            self._stats.recovered()
            self._journal.record(window, state="loaded", **result)
            self._stats.count("windows_loaded")
            self._stats.count("rows_loaded", int(result.get("rows", 0)))
            log.info("loaded window %s of sink %s: %s rows in %.2fs", window.id, self._sink,
                     result.get("rows"), time.monotonic() - started)
            break
        self.loading = None

    def _progress(self, window: Window):
        def record(**changes: Any) -> None:
            self._journal.record(window, **changes)
        return record
