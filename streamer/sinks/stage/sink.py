"""Stage sink: CSV files under <url>/<window>/part-NNNNN.csv, local or in S3.

A file is written through its store (store.local.LocalStore: under
_tmp/<instance>/, moved into its window when complete; store.s3.S3Store: an
in-memory buffer shipped as one object or a multipart upload) and only once it
is complete are the batches in it acknowledged.  Files rotate by records
(exactly), bytes (after the batch that passes the limit) and age (a timer, so
an idle stream still closes its file).  S3 files complete in the background
while the next file is written; their acknowledgements are still released in
file order, so a batch that spans two files is acknowledged only when both are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_right
from itertools import accumulate
from urllib.parse import urlparse

from streamer.core import deadletter
from streamer.core.batch import TIMEOUT, Batch, BatchBuffer, Origin
from streamer.core.deadletter import BadInput
from streamer.core.lines import Lines
from streamer.loaders.build import build_loader
from streamer.pipeline.context import Context
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.encoding import BatchEncoder
from streamer.sinks.stage.journal import Journal
from streamer.sinks.stage.store.local import LocalStore, StagedFile, Store, WrittenBatch
from streamer.sinks.stage.store.retry import Retry
from streamer.sinks.stage.windows import WindowKeeper

log = logging.getLogger("streamer.sink.stage")
COALESCE_RECORDS = 20_000

__all__ = ["StageSink", "WrittenBatch"]


class StageSink:
    def __init__(self, name: str, cfg: StageSinkConfig, buffer: BatchBuffer,
                 context: Context) -> None:
        metrics, data_dir, instance = context.metrics, context.data_dir, context.instance_id
        self.name = name
        self._cfg = cfg
        self._buffer = buffer
        self._metrics = metrics
        self._stats = metrics.sink(name)
        self._dead_letters = context.dead_letters
        self._encoder = BatchEncoder(name, cfg, self._stats)
        header = self._encoder.header()
        self._clients = None
        self._store: Store
        # the local disk is one destination: file writes and local completions share its gate
        self._disk_retry = Retry(self._stats, name, (OSError,))
        if urlparse(cfg.url).scheme == "s3":  # AWS libraries only imported when used
            from streamer.aws.clients import AwsClients
            from streamer.sinks.stage.store.s3 import S3Store, s3_retry
            self._clients = AwsClients(cfg.s3)
            retry = s3_retry(self._stats, name, cfg.s3.request_timeout_s)
            self._store = S3Store(cfg, instance, retry, header,
                                  self._clients, metrics, name)
        else:
            self._store = LocalStore(cfg, instance, self._disk_retry, header)
        self._journal = Journal(data_dir.journal(name))
        self.loader = build_loader(name, cfg, context, self._clients)
        self.windows = WindowKeeper(
            name, instance, self._journal, self.loader, self._stats,
            max_files=cfg.window_files, max_bytes=cfg.window_bytes, max_age_s=cfg.window_age_s)
        self._file: StagedFile | None = None
        # S3: files completing in the background, each waiting for the one before
        self._completing = asyncio.Semaphore(cfg.s3.upload_concurrency)
        self._last_completion: asyncio.Task | None = None
        self._completions: set[asyncio.Task] = set()
        self._fatal: asyncio.Future | None = None
        metrics.watch(name, self._gauges)

    @classmethod
    def takes_blocks(cls, cfg: StageSinkConfig) -> bool:
        return BatchEncoder.encodes_natively(cfg)  # DuckDB reads a read's block as it is

    def close(self) -> None:
        self._metrics.unwatch(self.name, self._gauges)

    def _gauges(self) -> dict[str, float]:
        return {"buffer_batches": self._buffer.depth,
                "buffer_bytes": self._buffer.buffered_bytes,
                "oldest_in_flight_s": self._buffer.oldest_age_s,
                "files_open": 1 if self._file else 0,
                "files_completing": len(self._completions),
                "windows_open": 1 if self.windows.current else 0,
                "windows_sealed": self.windows.sealed,
                "windows_pending_load": self.windows.pending,
                "windows_loading": 1 if self.windows.loading else 0,
                "windows_failed_now": len(self._stats.failed_windows),
                **self._store.gauges()}

    # -- lifecycle -----------------------------------------------------------------
    async def run(self) -> None:
        self._fatal = asyncio.get_running_loop().create_future()
        loads: asyncio.Task | None = None
        writer: asyncio.Task | None = None
        clean = False
        try:
            await self._store.start()
            starting = self._store.starting()
            if starting is not None:  # a store that fails to start stops the sink now,
                starting.add_done_callback(self._fail_on_error)  # not at its first file
            await self._recover()
            loads = asyncio.create_task(self.windows.run_loads(self._store.locations),
                                        name=f"loads:{self.name}")
            writer = asyncio.create_task(self._write_all(), name=f"stage:{self.name}")
            await asyncio.wait({writer, self._fatal}, return_when=asyncio.FIRST_COMPLETED)
            if self._fatal.done():
                raise self._fatal.exception()
            writer.result()
            await loads
            clean = True
        finally:
            tasks = [t for t in (writer, loads, *self._completions)
                     if t is not None and not t.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._store.close(abort=not clean)
            if self._clients is not None:
                await self._clients.close()
            self._journal.close()
            self._encoder.close()

    async def _write_all(self) -> None:
        await self._consume()
        await self._close_file()
        self.windows.seal_current()
        if self._last_completion is not None:
            await self._last_completion
        self.windows.finish()

    async def _recover(self) -> None:
        """Resume every unfinished window of an earlier run."""
        unfinished = self._journal.open()
        self.windows.known_failed(self._journal.failed())
        for window in unfinished:
            if window.state == "open":
                found = await self._store.list_window(window.id)
                window.bytes = sum(size for _, size in found)
                log.info("closing window %s left open by an earlier run (%d files)",
                         window.id, len(found))
                self.windows.close(window, [name for name, _ in found])
            else:
                log.info("resuming window %s (%s) from the journal", window.id, window.state)
                self.windows.resume(window)

    async def _consume(self) -> None:
        while True:
            deadline = self._deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            batch = await self._buffer.get(timeout)
            if batch is None:
                return
            if batch is not TIMEOUT:
                # behind? batches that already wait are written (and encoded) as one:
                # a DuckDB query costs ~3 ms besides its rows
                while batch.count < COALESCE_RECORDS:
                    more = self._buffer.get_ready()
                    if more is None:
                        break
                    batch.absorb(more)
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
            self.windows.seal_current()

    # -- writing -------------------------------------------------------------------
    async def _write_batch(self, batch: Batch) -> None:
        self._metrics.batch_records.labels(self.name).observe(batch.count)
        limit = self._cfg.max_file_records
        segments: list[Lines] = []  # records (their lines) for the open file
        origins: list[Origin] = []  # each segment's, for dead letters
        in_segments = 0
        rejected = 0
        for piece in batch.pieces:
            rest: Lines | None = piece.lines
            while rest is not None:
                if self._file is None:
                    await self._open_file()
                room = limit - self._file.record_count - in_segments
                part, rest = (rest, None) if rest.count <= room else rest.split(room)
                segments.append(part)
                origins.append(piece.origin)
                in_segments += part.count
                if self._file.record_count + in_segments >= limit:
                    rejected += await self._append(segments, in_segments, origins)
                    segments, origins, in_segments = [], [], 0
                    if rest is not None or piece is not batch.pieces[-1]:
                        await self._close_file()
        if segments:
            rejected += await self._append(segments, in_segments, origins)
        # dead-lettered records are counted as such, not as delivered
        self._file.written_batches.append(WrittenBatch([p.ack for p in batch.pieces],
                                                       batch.count - rejected,
                                           batch.nbytes, batch.created))
        if (self._file.record_count >= limit or self._file.size >= self._cfg.max_file_bytes):
            await self._close_file()

    async def _append(self, segments: list[Lines], records: int,
                      origins: list[Origin]) -> int:
        """Encode and write records; how many of them were dead-lettered."""
        file = self._file
        encoded = await self._encoder.encode(segments)
        if encoded.rejected:
            self._dead_letter(segments, origins, encoded.rejected)
        await self._store_write(file, encoded.rows)
        file.record_count += records - len(encoded.rejected)
        await self._store.flushed(file)
        return len(encoded.rejected)

    def _dead_letter(self, segments: list[Lines], origins: list[Origin],
                     rejected: list[tuple[int, str]]) -> None:
        """Records whose values the column mapping could not convert."""
        starts = list(accumulate((s.count for s in segments), initial=0))
        entries = []
        for index, reason in rejected:
            which = bisect_right(starts, index) - 1
            origin = origins[which]
            raw = segments[which].raws[index - starts[which]]
            entries.append(deadletter.entry(self.name, origin.stream,
                                            BadInput(origin.offset, reason, raw),
                                            source=origin.source))
        self._dead_letters.write(self.name, entries)
        self._stats.dead_lettered += len(entries)
        log.warning("stage sink %s: %d record(s) dead-lettered: %s", self.name, len(entries),
                    rejected[0][1])

    async def _store_write(self, file: StagedFile, rows: bytes) -> None:
        try:
            file.write(rows)
        except OSError as exc:  # local disk trouble: retried until it passes
            self._stats.failed(f"write: {exc}")
            self._stats.retried += 1
            log.warning("stage sink %s: write failed (%s); retrying", self.name, exc)
            await self._disk_retry.run("write", file.write, rows)

    async def _open_file(self) -> None:
        window, name = self.windows.name_file(self._store.suffix)
        self._file = await self._store.open(window, name)

    async def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        if not self._store.background:
            await self._complete(file, None)
            return
        await self._completing.acquire()
        task = asyncio.create_task(self._complete(file, self._last_completion),
                                   name=f"complete:{self.name}:{file.name}")
        self._last_completion = task
        self._completions.add(task)
        task.add_done_callback(self._completed)

    def _completed(self, task: asyncio.Task) -> None:
        self._completions.discard(task)
        self._completing.release()
        self._fail_on_error(task)

    def _fail_on_error(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._fatal is not None and not self._fatal.done():
            self._fatal.set_exception(exc)

    async def _complete(self, file: StagedFile, before: asyncio.Task | None) -> None:
        size = await self._store.complete(file)
        if before is not None:
            await before  # acknowledge in file order
        self._stats.count("files_staged")
        self._stats.count("bytes_staged", size)
        self.windows.add_file(file.name, size, file.record_count, file.window)
        now = time.monotonic()
        latency = self._metrics.sink_latency.labels(self.name)
        for written in file.written_batches:
            for ack in written.acks:
                ack.release()
            self._stats.delivered += written.count
            self._stats.delivered_bytes += written.nbytes
            latency.observe(now - written.taken_at)
