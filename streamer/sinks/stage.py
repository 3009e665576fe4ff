"""Stage sink (local): CSV files under <url>/<window>/part-NNNNN.csv.

A file is written under _tmp/<instance>/ and moved into its window when
complete; only then are the batches in it acknowledged.  Files rotate by
records (exactly), bytes (after the batch that passes the limit) and age (a
timer, so an idle stream still closes its file).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from streamer.batch import TIMEOUT, Batch, BatchBuffer
from streamer.codec import CsvEncoder
from streamer.config import DuckDBLoad, StageSinkConfig
from streamer.context import Context
from streamer.journal import Journal
from streamer.loaders.duckdb import DuckDBLoader
from streamer.sinks.windows import WindowKeeper
from streamer.state import fsync_dir

log = logging.getLogger("streamer.sink.stage")


@dataclass
class Receipt:
    """What a written batch leaves behind until its file is complete: only acks."""

    acks: list
    records: int
    nbytes: int
    taken_at: float


@dataclass
class StageFile:
    tmp_path: Path
    fd: int
    opened_at: float
    text: TextIO | None = None
    size: int = 0  # bytes known to be written whole
    records: int = 0
    receipts: list[Receipt] = field(default_factory=list)

    def writer(self) -> TextIO:
        if self.text is None:
            self.text = open(self.fd, "w", encoding="utf-8", newline="",  # noqa: SIM115
                             buffering=1 << 20, closefd=False)
        return self.text

    def rewind(self) -> None:
        """After a failed write: drop the torn tail so the retry starts clean."""
        self.text = None  # its buffer may hold part of the failed write
        os.ftruncate(self.fd, self.size)
        os.lseek(self.fd, self.size, os.SEEK_SET)


class StageSink:
    def __init__(self, name: str, cfg: StageSinkConfig, buffer: BatchBuffer,
                 context: Context) -> None:
        metrics, data_dir, instance = context.metrics, context.data_dir, context.instance_id
        self.name = name
        self._cfg = cfg
        self._buffer = buffer
        self._metrics = metrics
        self._stats = metrics.sink(name)
        self._instance = instance
        self._dir = cfg.directory
        self._tmp_dir = self._dir / "_tmp" / instance
        self._encoder = CsvEncoder(cfg.columns, separator=cfg.csv.separator,
                                   quote=cfg.csv.quote, null_value=cfg.csv.null_value)
        self._header = self._encoder.header().decode()
        self._journal = Journal(data_dir / "journal" / f"{name}.ndjson")
        self.loader = (DuckDBLoader(cfg.load, cfg.columns, cfg.csv, data_dir, name)
                       if isinstance(cfg.load, DuckDBLoad) else None)
        self.windows = WindowKeeper(
            name, instance, self._journal, self.loader, self._stats,
            max_files=cfg.window_files, max_bytes=cfg.window_bytes, max_age_s=cfg.window_age_s)
        self._file: StageFile | None = None
        self._part = 0
        metrics.watch(name, self._gauges)

    def _gauges(self) -> dict[str, float]:
        return {"buffer_batches": self._buffer.depth,
                "buffer_bytes": self._buffer.buffered_bytes,
                "oldest_in_flight_s": self._buffer.oldest_age_s,
                "files_open": 1 if self._file else 0,
                "windows_open": 1 if self.windows.current else 0,
                "windows_pending_load": self.windows.pending,
                "windows_loading": 1 if self.windows.loading else 0}

    # -- lifecycle -----------------------------------------------------------------
    async def run(self) -> None:
        self._recover()
        loads = asyncio.create_task(self.windows.run_loads(self._window_paths),
                                    name=f"loads:{self.name}")
        try:
            await self._consume()
            await self._close_file()
            self.windows.close_current()
            self.windows.finish()
            await loads
        finally:
            if not loads.done():
                loads.cancel()
            self._journal.close()

    def _recover(self) -> None:
        """Drop files of a crashed run (their batches were never acknowledged, the
        sources send them again) and resume every unfinished window."""
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self._tmp_dir.iterdir():
            log.info("removing incomplete stage file %s from an earlier run", leftover)
            leftover.unlink()
        for window in self._journal.open():
            if window.state == "open":
                directory = self._dir / window.id
                files = sorted(p.name for p in directory.glob("part-*.csv")) \
                    if directory.exists() else []
                sizes = sum((directory / f).stat().st_size for f in files)
                window.bytes = sizes
                log.info("closing window %s left open by an earlier run (%d files)",
                         window.id, len(files))
                self.windows.close(window, files)
            else:
                log.info("resuming window %s (%s) from the journal", window.id, window.state)
                self.windows.resume(window)

    def _window_paths(self, window) -> list[str]:
        return [str(self._dir / window.id / name) for name in window.files]

    async def _consume(self) -> None:
        while True:
            deadline = self._deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            batch = await self._buffer.get(timeout)
            if batch is None:
                return
            if batch is not TIMEOUT:
                await self._write_batch(batch)
            await self._on_timers()

    def _deadline(self) -> float | None:
        times = [t for t in (self.windows.deadline(),
                             self._file.opened_at + self._cfg.max_file_age_s
                             if self._file else None) if t is not None]
        return min(times) if times else None

    async def _on_timers(self) -> None:
        now = time.monotonic()
        if self._file and now >= self._file.opened_at + self._cfg.max_file_age_s:
            await self._close_file()
        deadline = self.windows.deadline()
        if deadline is not None and now >= deadline:
            await self._close_file()
            self.windows.close_current()

    # -- writing -------------------------------------------------------------------
    async def _write_batch(self, batch: Batch) -> None:
        self._metrics.batch_records.labels(self.name).observe(batch.records)
        limit = self._cfg.max_file_records
        segments: list[tuple[list, bool]] = []
        in_segments = 0
        for piece in batch.pieces:
            records, start = piece.records, 0
            while start < len(records):
                if self._file is None:
                    await self._open_file()
                room = limit - self._file.records - in_segments
                part = records if start == 0 and len(records) <= room \
                    else records[start:start + room]
                segments.append((part, piece.plain))
                in_segments += len(part)
                start += len(part)
                if self._file.records + in_segments >= limit:
                    await self._append(segments, in_segments)
                    segments, in_segments = [], 0
                    if start < len(records) or piece is not batch.pieces[-1]:
                        await self._close_file()
        if segments:
            await self._append(segments, in_segments)
        self._file.receipts.append(Receipt([p.ack for p in batch.pieces], batch.records,
                                           batch.nbytes, batch.created))
        if (self._file.records >= limit or self._file.size >= self._cfg.max_file_bytes):
            await self._close_file()

    async def _append(self, segments: list[tuple[list, bool]], records: int) -> None:
        # encoded straight into the file's buffer on the event loop: the writes
        # land in the page cache, and a thread hop per batch costs more
        await self._retrying("write", False, self._write,
                             lambda out: self._encoder.write(out, segments))
        self._file.records += records

    def _write(self, fill: Callable[[TextIO], None]) -> None:
        stage = self._file
        try:
            out = stage.writer()
            fill(out)
            out.flush()
        except OSError:
            stage.rewind()
            raise
        stage.size = os.lseek(stage.fd, 0, os.SEEK_CUR)

    async def _retrying(self, what: str, in_thread: bool, func, *args) -> None:
        """Local disk errors (disk full, ...) are retried until they pass."""
        delay = 0.5
        while True:
            try:
                if in_thread:
                    await asyncio.to_thread(func, *args)
                else:
                    func(*args)
            except OSError as exc:
                self._stats.failed(f"{what}: {exc}")
                self._stats.retried += 1
                log.warning("stage sink %s: %s failed (%s); retrying in %.1fs",
                            self.name, what, exc, delay)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 30.0)
                continue
            self._stats.recovered()
            return

    async def _open_file(self) -> None:
        self._part += 1
        path = self._tmp_dir / f"part-{time.time_ns()}-{self._part:05d}.csv.tmp"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._file = StageFile(path, fd, time.monotonic())
        await self._retrying("write", False, self._write, lambda out: out.write(self._header))

    async def _close_file(self) -> None:
        stage, self._file = self._file, None
        if stage is None:
            return
        window = self.windows.ensure_open()
        name = f"part-{len(window.files) + 1:05d}.csv"
        target = self._dir / window.id / name
        await self._retrying("close", True, self._complete, stage, target)
        self._stats.count("files_staged")
        self._stats.count("bytes_staged", stage.size)
        self.windows.add_file(name, stage.size, stage.records)
        now = time.monotonic()
        latency = self._metrics.sink_latency.labels(self.name)
        for receipt in stage.receipts:
            for ack in receipt.acks:
                ack.release()
            self._stats.delivered += receipt.records
            self._stats.delivered_bytes += receipt.nbytes
            latency.observe(now - receipt.taken_at)

    def _complete(self, stage: StageFile, target: Path) -> None:
        if stage.fd >= 0:
            if stage.text is not None:
                stage.text.close()  # flushed after every write; closefd=False
                stage.text = None
            if self._cfg.fsync:
                os.fsync(stage.fd)
            os.close(stage.fd)
            stage.fd = -1
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage.tmp_path, target)
        if self._cfg.fsync:
            fsync_dir(target.parent)
