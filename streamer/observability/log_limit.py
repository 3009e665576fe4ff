"""Rate limiting of repeated warnings and errors: a handler wrapper.

A failing destination can log the same warning thousands of times a second.
Records at WARNING or above are grouped by (logger, level, message template,
component: the name given with `extra=limit_group(name)`, if any); a group
shows at most `burst` records per window of `window_s` seconds (the window
starts at the group's first record).  The rest are counted, and when the
window ends one record says how many were suppressed:
``<last message> -- repeated 523 times in the last 10s (suppressed)``.

Window ends are noticed on the next record of any group and by a timer thread
(so a storm that stops still gets its count line); `flush_pending()` emits
every count at once (before the JSON summary line of a run)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Key = tuple[str, int, str, str]  # logger, level, template, limit group
LIMIT_GROUP = "limit_group"


def limit_group(name: str) -> dict[str, str]:
    """`extra=` for a warning that repeats per component (a sink, a source): each
    component is limited on its own, so one's storm never hides another's."""
    return {LIMIT_GROUP: name}


@dataclass
class _Window:
    start: float
    seen: int = 0
    suppressed: int = 0
    last_msg: Any = None
    last_args: Any = None


def _render(msg: Any, args: Any) -> str:
    try:
        return str(msg) % args if args else str(msg)
    except (TypeError, ValueError):
        return str(msg)


class RateLimitHandler(logging.Handler):
    """Forwards records to `target`, suppressing repeats beyond the burst."""

    def __init__(self, target: logging.Handler, *, burst: int = 10, window_s: float = 10.0,
                 min_level: int = logging.WARNING, max_groups: int = 1024,
                 clock: Callable[[], float] = time.monotonic, use_timer: bool = True) -> None:
        super().__init__()
        self.target = target
        self.burst = burst
        self.window_s = window_s
        self.min_level = min_level
        self._max_groups = max_groups
        self._clock = clock
        self._use_timer = use_timer
        self._windows: dict[Key, _Window] = {}
        self._next_end = float("inf")  # earliest end of a window
        self._timer: threading.Timer | None = None
        self._timer_at = float("inf")

    # -- called by logging.Handler.handle, under self.lock ---------------------------
    def emit(self, record: logging.LogRecord) -> None:
        now = self._clock()
        out = self._take_ended(now, everything=False)
        if self._admit(record, now):
            out.append(record)
        for item in out:
            self.target.handle(item)

    def _admit(self, record: logging.LogRecord, now: float) -> bool:
        if record.levelno < self.min_level:
            return True
        key = (record.name, record.levelno, str(record.msg), getattr(record, LIMIT_GROUP, ""))
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self._max_groups:
                return True  # too many distinct messages to track: show them all
            window = self._windows[key] = _Window(now)
            self._next_end = min(self._next_end, now + self.window_s)
        window.seen += 1
        if window.seen <= self.burst:
            return True
        window.suppressed += 1
        window.last_msg, window.last_args = record.msg, record.args
        if window.suppressed == 1:
            self._arm_timer(window.start + self.window_s, now)
        return False

    def _take_ended(self, now: float, everything: bool) -> list[logging.LogRecord]:
        """Forget the windows that ended; a count record for each that suppressed."""
        if not everything and now < self._next_end:
            return []
        out = []
        next_end = float("inf")
        for key, window in list(self._windows.items()):
            end = window.start + self.window_s
            if everything or now >= end:
                del self._windows[key]
                if window.suppressed:
                    out.append(self._count_record(key, window))
            else:
                next_end = min(next_end, end)
        self._next_end = next_end
        return out

    def _count_record(self, key: Key, window: _Window) -> logging.LogRecord:
        name, level, _template, _group = key
        return logging.makeLogRecord({
            "name": name, "levelno": level, "levelname": logging.getLevelName(level),
            "msg": "%s -- repeated %d times in the last %ss (suppressed)",
            "args": (_render(window.last_msg, window.last_args), window.suppressed,
                     f"{self.window_s:g}")})

    # -- timer: a storm that stops still gets its count line ------------------------
    def _arm_timer(self, at: float, now: float) -> None:
        if not self._use_timer or at >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = threading.Timer(max(0.0, at - now) + 0.01, self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _on_timer(self) -> None:
        with self.lock:
            self._timer, self._timer_at = None, float("inf")
            now = self._clock()
            out = self._take_ended(now, everything=False)
            pending = [w.start + self.window_s for w in self._windows.values() if w.suppressed]
            if pending:
                self._arm_timer(min(pending), now)
            for item in out:
                self.target.handle(item)

    # -- many records of one group at once (a storm of bad input lines) ------------
    def room(self, key: Key) -> int:
        """How many records of the group `key` would be shown now: a caller with more
        logs that many and hands the rest to `count_suppressed`, so a storm costs no
        record per line."""
        with self.lock:
            if key[1] < self.min_level:
                return self.burst
            window = self._windows.get(key)
            if window is None:
                return self.burst if len(self._windows) < self._max_groups else 1 << 62
            if self._clock() >= window.start + self.window_s:
                return self.burst
            return max(0, self.burst - window.seen)

    def count_suppressed(self, key: Key, count: int, last_msg: Any, last_args: Any) -> None:
        """`count` records of the group `key` (the last: `last_msg % last_args`) that
        were not made: counted as suppressed, as if each had been logged."""
        with self.lock:
            now = self._clock()
            out = self._take_ended(now, everything=False)
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(now)
                self._next_end = min(self._next_end, now + self.window_s)
            window.seen += count
            window.suppressed += count
            window.last_msg, window.last_args = last_msg, last_args
            if window.suppressed == count:
                self._arm_timer(window.start + self.window_s, now)
            for item in out:
                self.target.handle(item)

    # -- public ------------------------------------------------------------------
    def emit_ended(self) -> None:
        """Emit the count lines of the windows that have ended by now."""
        with self.lock:
            for item in self._take_ended(self._clock(), everything=False):
                self.target.handle(item)

    def flush_pending(self) -> None:
        """Emit every pending count line now and stop the timer."""
        with self.lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_at = None, float("inf")
            for item in self._take_ended(self._clock(), everything=True):
                self.target.handle(item)

    def close(self) -> None:
        self.flush_pending()
        super().close()
