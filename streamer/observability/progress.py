"""A status line on the terminal for finite runs (one-shot loads).

On when stderr is a terminal and every source is finite (files with
`follow = false`, stdin); off with `--no-progress`, when stderr is a file or a
pipe, and for daemons (a followed file, a socket or Kafka source).  About
twice a second it redraws one line: records, records/s, bytes read and, for
inputs of known size (files, stdin redirected from a file), the percent done
and an ETA.  The line lives in the console log handler, which clears it
before it writes a log record; `stop()` clears it for good before the run's
JSON summary line."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import time
from collections import deque
from collections.abc import Callable

from streamer.config.root import Config
from streamer.datadir.layout import DataDir
from streamer.observability.logs import ConsoleHandler, console_handler
from streamer.observability.metrics import Metrics
from streamer.sources.file.checkpoint import FileKey, resume_offsets
from streamer.sources.file.config import FileSourceConfig
from streamer.sources.file.globbing import expand_all
from streamer.sources.stdin.config import StdinSourceConfig

INTERVAL_S = 0.5
RATE_SAMPLES = 6  # records/s and the ETA are measured over the last ~3 s


def finite_run(cfg: Config) -> bool:
    return all(isinstance(src, StdinSourceConfig)
               or (isinstance(src, FileSourceConfig) and not src.follow)
               for src in cfg.sources.values())


def _file_total(cfg: FileSourceConfig, offsets: dict[FileKey, int]) -> int:
    """Bytes left to read in the files the globs match now: their sizes less the
    offsets their checkpoints resume from."""
    sizes: dict[FileKey, int] = {}
    for _pattern, matched in expand_all(cfg.paths, cfg.exclude):
        for path in matched:
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                offset = offsets.get(key, 0)
                sizes[key] = st.st_size - offset if offset <= st.st_size else st.st_size
    return sum(sizes.values())


def _stdin_total() -> int | None:
    """stdin redirected from a regular file has a size; a pipe has none."""
    try:
        fd = sys.stdin.fileno()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return max(0, st.st_size - os.lseek(fd, 0, os.SEEK_CUR))
    except (OSError, ValueError, AttributeError):
        return None


def input_totals(cfg: Config) -> dict[str, int | None]:
    """Per source: the bytes this run will read, None when unknown."""
    totals: dict[str, int | None] = {}
    data_dir = DataDir(cfg.data_path)  # a single process: workers show no progress
    for name, src in cfg.sources.items():
        if isinstance(src, FileSourceConfig):
            totals[name] = _file_total(src, resume_offsets(data_dir.checkpoint(name)))
        else:
            totals[name] = _stdin_total()
    return totals


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop returns at GiB


def human_duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    def __init__(self, metrics: Metrics, totals: dict[str, int | None], console: ConsoleHandler,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._totals = totals
        self._console = console
        self._clock = clock
        self._samples: deque[tuple[float, int, int]] = deque(maxlen=RATE_SAMPLES)
        self._task: asyncio.Task | None = None

    def line(self) -> str:
        sources = [self._metrics.sources.get(name) for name in self._totals]
        records = sum(s.records for s in sources if s is not None)
        read = sum(s.bytes for s in sources if s is not None)
        now = self._clock()
        self._samples.append((now, records, read))
        first = self._samples[0]
        elapsed = now - first[0]
        record_rate = (records - first[1]) / elapsed if elapsed > 0 else 0.0
        byte_rate = (read - first[2]) / elapsed if elapsed > 0 else 0.0
        parts = [f"{records:,} records", f"{record_rate:,.0f} rec/s"]
        known = [n for n, total in self._totals.items() if total is not None]
        total = sum(self._totals[n] or 0 for n in known)
        if known:
            done = sum(s.bytes for n in known if (s := self._metrics.sources.get(n)) is not None)
            percent = min(100.0, 100.0 * done / total) if total else 100.0
            eta = (human_duration((total - done) / byte_rate) if byte_rate > 0 and done < total
                   else "--")
            parts.append(f"{human_bytes(done)} of {human_bytes(total)} read ({percent:.1f}%)")
            parts.append(f"ETA {eta}")
        else:
            parts.append(f"{human_bytes(read)} read")
        if sources and all(s is not None and s.finished for s in sources):
            parts.append("input done, draining sinks")
        return "streamer: " + ", ".join(parts)

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self._console.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        return (columns or 80) - 1

    def draw(self) -> None:
        self._console.show_status(self.line()[:self._width()])

    async def _run(self) -> None:
        while True:
            self.draw()
            await asyncio.sleep(INTERVAL_S)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="progress")

    def stop(self) -> None:
        """Stop drawing and clear the line (the summary must be the last line)."""
        if self._task is not None:
            self._task.cancel()
        self._console.clear_status()


def start_progress(cfg: Config, metrics: Metrics, wanted: bool = True) -> Progress | None:
    """A running Progress when the run is finite and stderr is a terminal."""
    console = console_handler()
    if not wanted or console is None or not console.isatty() or not finite_run(cfg):
        return None
    progress = Progress(metrics, input_totals(cfg), console)
    progress.start()
    return progress
