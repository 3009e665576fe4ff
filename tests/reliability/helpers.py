"""What only the reliability suites check about the daemon from the outside (issue #6),
beyond the shared tests/helpers: a watcher of its /metrics, coverage and duplicates."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psutil

from tests.fixtures.td import TDEmulator
from tests.helpers import Daemon, identity_problems, multiset, scrape, stored


def td_coverage(emu: TDEmulator, records: list[dict[str, Any]]) -> int:
    """Asserts that the emulator accepted every record at least once and nothing else;
    returns how many duplicates it holds."""
    got, want = multiset(stored(emu)), multiset(records)
    missing, extra = set(want) - set(got), set(got) - set(want)
    assert not missing and not extra, (
        f"td: {len(missing)} records lost (e.g. {list(missing)[:1]}), "
        f"{len(extra)} unknown (e.g. {list(extra)[:1]})")
    return sum(got.values()) - sum(want.values())


def stage_duplicates(counts: Counter[int]) -> int:
    """Rows beyond the first of each id (counts from assert_stage_covers)."""
    return sum(counts.values()) - len(counts)


@dataclass
class Watcher:
    """Scrapes a running daemon's /metrics in a thread: the identity of every sink in
    every scrape, the daemon still running, its RSS and the source's bytes read."""

    daemon: Daemon
    port: int
    sinks: list[str]
    source: str
    interval: float = 0.2
    scrapes: int = 0
    problems: list[str] = field(default_factory=list)
    samples: list[tuple[float, int, float]] = field(default_factory=list)  # (t, rss, bytes)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Watcher:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            self._watch()
        except Exception as exc:  # reported by the test through `problems`
            self.problems.append(f"watcher failed: {exc!r}")

    def _watch(self) -> None:
        process = psutil.Process(self.daemon.proc.pid)
        source_bytes = ("streamer_source_bytes_total", (("source", self.source),))
        while not self._stop.wait(self.interval):
            if self.daemon.proc.poll() is not None:
                self.problems.append(f"daemon exited on its own ({self.daemon.proc.returncode})")
                return
            metrics = scrape(self.port)
            ready = all(("streamer_sink_received_total", (("sink", s),)) in metrics
                        for s in self.sinks)
            if not metrics or (not ready and not self.scrapes):
                continue  # not listening yet, or the sinks not built yet
            self.scrapes += 1
            self.problems.extend(identity_problems(metrics, self.sinks))
            try:
                rss = process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            self.samples.append((time.monotonic(), rss, metrics[source_bytes]))

    def between(self, start: float, end: float) -> list[tuple[float, int, float]]:
        return [s for s in self.samples if start <= s[0] <= end]
