"""Stage sink: files under <url>/<window>/part-NNNNN.csv (or .ndjson, .parquet, and
compressed: formats.py), local or in S3.

A file is written through its store (store.local.LocalStore: under
_tmp/<instance>/, moved into its window when complete; store.s3.S3Store: an
in-memory buffer shipped as one object or a multipart upload) and only once it
is complete are the batches in it acknowledged.  Files rotate by records
(exactly), bytes (after the batch that passes the limit) and age (a timer, so
an idle stream still closes its file).  S3 files complete in the background
while the next file is written; their acknowledgements are still released in
file order, so a batch that spans two files is acknowledged only when both are.

With `exactly_once`, each replayable stream has its own file (streams.py),
whose completion is journaled before its batches are acknowledged; a restart
deletes complete files no record counts and skips replayed pieces up to each
stream's fence.  Streams that move between instances (Kafka partitions) also
get a ledger marker in the stage (ledger.py) before the completion record, and are
handed over through `assigned` / `revoked`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from urllib.parse import urlparse

from streamer.core.batch import TIMEOUT, Batch, BatchBuffer, Origin, Piece
from streamer.core.lines import Lines
from streamer.loaders.build import build_loader
from streamer.pipeline.context import Context
from streamer.runtime.faults import FaultPoint
from streamer.sinks.stage.completion import FileCompletions
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.encoding import BatchEncoder
from streamer.sinks.stage.handoff import StreamHandoffs
from streamer.sinks.stage.journal import Journal
from streamer.sinks.stage.ledger import Ledger
from streamer.sinks.stage.lookahead import Lookahead, coalesce
from streamer.sinks.stage.metrics import declare_events
from streamer.sinks.stage.recovery import recover
from streamer.sinks.stage.rejects import rejected_entries
from streamer.sinks.stage.store.local import LocalStore, StagedFile, Store, WrittenBatch
from streamer.sinks.stage.store.retry import Retry
from streamer.sinks.stage.streams import Stream, StreamFiles, group_pieces, stream_stem
from streamer.sinks.stage.windows import WindowKeeper

log = logging.getLogger("streamer.sink.stage")

__all__ = ["StageSink", "WrittenBatch"]


class StageSink(StreamHandoffs, FileCompletions):
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
            from streamer.sinks.stage.store.s3 import S3Store
            from streamer.sinks.stage.store.s3_errors import s3_retry
            self._clients = AwsClients(cfg.s3)
            retry = s3_retry(self._stats, name, cfg.s3.request_timeout_s, context.finite)
            self._store = S3Store(cfg, instance, retry, header,
                                  self._clients, metrics, name)
        else:
            self._store = LocalStore(cfg, instance, self._disk_retry, header)
        self._journal = Journal(data_dir.journal(name))
        self.loader = build_loader(name, cfg, context, self._clients)
        self.windows = WindowKeeper(
            name, instance, self._journal, self.loader, self._stats,
            max_files=cfg.window_files, max_bytes=cfg.window_bytes, max_age_s=cfg.window_age_s,
            exactly_once=cfg.exactly_once)
        self._file: StagedFile | None = None
        self._streams: StreamFiles | None = None
        self._fences: dict[tuple[str, str], int] = {}
        self._faults = FaultPoint.from_env()
        self._ledger = Ledger(self._store, instance)
        self._init_handoffs(context.fences)
        if cfg.exactly_once:
            self._streams = StreamFiles(cfg.max_open_files)
            context.fences.on_handoff(self)
            self._journal.replay()  # the fences, for the sources that start after us
            self._fences = dict(self._journal.fences)
            for (source, key), end in self._fences.items():
                context.fences.set(name, source, key, end)
        # the next batch's query runs while the last one's rows are written
        self._lookahead = Lookahead(self._encoder, buffer, enabled=not cfg.exactly_once)
        # S3: files completing in the background, each waiting for the one before
        self._completing = asyncio.Semaphore(cfg.s3.upload_concurrency)
        self._last_completion: asyncio.Task | None = None
        self._completions: set[asyncio.Task] = set()
        self._fatal: asyncio.Future | None = None
        metrics.watch(name, self._gauges)
        declare_events(metrics, name, loads=self.loader is not None)

    @classmethod
    def takes_blocks(cls, cfg: StageSinkConfig) -> bool:
        return BatchEncoder.encodes_natively(cfg)  # DuckDB reads a read's block as it is

    def close(self) -> None:
        self._metrics.unwatch(self.name, self._gauges)

    def _gauges(self) -> dict[str, float]:
        return {"buffer_batches": self._buffer.depth,
                "buffer_bytes": self._buffer.buffered_bytes,
                "oldest_in_flight_s": self._buffer.oldest_age_s,
                "files_open": (1 if self._file else 0)
                + (len(self._streams) if self._streams else 0),
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
            self._lookahead.close()
            if self._journal.behind:
                log.warning("stage sink %s: journal %s still not written at the stop (%s): "
                            "what it held back is read again after a restart", self.name,
                            self._journal.path, self._journal.write_error)
            self._encoder.close()

    async def _write_all(self) -> None:
        await self._consume()
        async with self._writing:
            await self._close_file()
            await self._close_streams(self._streams.streams() if self._streams else [])
        self.windows.seal_current()
        if self._last_completion is not None:
            await self._last_completion
        self.windows.finish()

    async def _recover(self) -> None:
        await recover(self._journal, self._store, self._ledger, self.windows)

    async def _consume(self) -> None:
        while True:
            batch = self._lookahead.next_batch()
            if batch is None:
                deadline = self._deadline()
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                batch = await self._buffer.get(timeout)
                if batch is None:
                    return
                if batch is not TIMEOUT:
                    # behind? batches that already wait are written (and encoded) as one
                    coalesce(batch, self._buffer)
            if batch is not TIMEOUT:
                async with self._writing:
                    await self._write_batch(batch)
            async with self._writing:
                await self._on_timers()

    def _deadline(self) -> float | None:
        first = self._streams.first_opened() if self._streams else None
        times = [t for t in (self.windows.deadline(),
                             self._file.opened_at + self._cfg.max_file_age_s
                             if self._file else None,
                             first + self._cfg.max_file_age_s if first is not None else None)
                 if t is not None]
        return min(times) if times else None

    async def _on_timers(self) -> None:
        now = time.monotonic()
        if self._file and now >= self._file.opened_at + self._cfg.max_file_age_s:
            await self._close_file()
        if self._streams:
            await self._close_streams(
                self._streams.opened_before(now - self._cfg.max_file_age_s))
        deadline = self.windows.deadline()
        if deadline is not None and now >= deadline:
            await self._close_file()
            if self._streams:
                await self._close_streams(self._streams.streams())
            self.windows.seal_current()

    # -- writing -------------------------------------------------------------------
    async def _write_batch(self, batch: Batch) -> None:
        self._metrics.batch_records.labels(self.name).observe(batch.count)
        if self._streams is not None:
            await self._write_streams(batch)
            return
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
                    last = rest is None and piece is batch.pieces[-1]
                    rejected += await self._append(self._file, segments, in_segments,
                                                   origins, ahead=last)
                    segments, origins, in_segments = [], [], 0
                    if rest is not None or piece is not batch.pieces[-1]:
                        await self._close_file()
        if segments:
            rejected += await self._append(self._file, segments, in_segments, origins,
                                           ahead=True)
        # dead-lettered records are counted as such, not as delivered
        self._file.written_batches.append(WrittenBatch([p.ack for p in batch.pieces],
                                                       batch.count - rejected,
                                           batch.nbytes, batch.created))
        if (self._file.record_count >= limit or self._file.size >= self._cfg.max_file_bytes):
            await self._close_file()

    async def _append(self, file: StagedFile, segments: list[Lines], records: int,
                      origins: list[Origin], ahead: bool = False) -> int:
        """Encode and write records; how many of them were dead-lettered (values the
        column mapping could not convert).  `ahead`: the batch's last records, whose
        rows are written while the next batch's query runs."""
        encoded = await self._lookahead.encode(segments, file)
        if ahead:
            after = file.record_count + records - len(encoded.rejected)
            limit = self._cfg.max_file_records
            self._lookahead.take(limit - after if after < limit else limit)
        if encoded.rejected:
            entries = rejected_entries(self.name, segments, origins, encoded.rejected)
            self._dead_letters.write(self.name, entries)
            self._stats.dead_lettered += len(entries)
            log.warning("stage sink %s: %d record(s) dead-lettered: %s", self.name,
                        len(entries), encoded.rejected[0][1])
        await self._store_write(file, encoded.rows)
        file.record_count += records - len(encoded.rejected)
        await self._store.flushed(file)
        return len(encoded.rejected)

    async def _store_write(self, file: StagedFile, rows: bytes) -> None:
        try:
            file.write(rows)
        except OSError as exc:  # local disk trouble: retried until it passes
            self._stats.failed(f"write: {exc}")
            self._stats.retried += 1
            log.warning("stage sink %s: write failed (%s); retrying", self.name, exc)
            await self._disk_retry.run("write", file.write, rows)

    # -- exactly once: a file per stream ---------------------------------------------
    async def _write_streams(self, batch: Batch) -> None:
        # stale pieces (read before their partition was revoked) are neither written
        # nor acknowledged: their offsets must not be committed from here (the revoking
        # source commits before it drops the partition); the next owner stages them
        groups, skipped, stale = group_pieces(batch.pieces, self._fences, self._epochs)
        if stale:
            self._stats.count("records_handed_over", sum(piece.count for piece in stale))
        if skipped:
            count = sum(piece.count for piece in skipped)
            for piece in skipped:  # staged before a crash: acknowledged, not written
                piece.ack.release()
            self._stats.delivered += count
            self._stats.delivered_bytes += sum(piece.nbytes for piece in skipped)
            self._stats.count("records_skipped_replayed", count)
        for stream, pieces in groups.items():
            await self._write_stream(stream, pieces, batch.created)

    async def _write_stream(self, stream: Stream, pieces: list[Piece], created: float) -> None:
        """Whole pieces into the stream's file; a file closes after the piece that
        reaches max_file_records, or after the write that reaches max_file_bytes."""
        cfg = self._cfg
        file = self._streams.get(stream)
        taken: list[Piece] = []
        records = nbytes = 0
        for piece in pieces:
            if file is None:
                file = await self._open_stream_file(stream, piece.origin.offset)
            taken.append(piece)
            records += piece.count
            nbytes += piece.nbytes
            if file.record_count + records >= cfg.max_file_records:
                await self._append_pieces(file, taken, records, nbytes, created)
                taken, records, nbytes = [], 0, 0
                await self._close_streams([stream])
                file = None
        if taken:
            await self._append_pieces(file, taken, records, nbytes, created)
            if file.size >= cfg.max_file_bytes:
                await self._close_streams([stream])

    async def _append_pieces(self, file: StagedFile, pieces: list[Piece], records: int,
                             nbytes: int, created: float) -> None:
        rejected = await self._append(file, [p.lines for p in pieces], records,
                                      [p.origin for p in pieces])
        file.end = pieces[-1].origin.end
        file.written_batches.append(WrittenBatch([p.ack for p in pieces], records - rejected,
                                                 nbytes, created))
        self._faults.hit("stage.written")

    async def _open_stream_file(self, stream: Stream, start: int) -> StagedFile:
        if self._streams.full():  # the least recently written makes room
            await self._close_streams([self._streams.least_recent()])
        window, name = self.windows.name_file(self._store.suffix, stream_stem(stream, start))
        file = await self._store.open(window, name)
        file.stream, file.start = stream, start
        self._streams.add(file)
        return file

    async def _close_streams(self, streams: Iterable[Stream]) -> None:
        for stream in streams:
            file = self._streams.pop(stream)
            if file is not None:
                await self._finish(file)

    async def _open_file(self) -> None:
        window, name = self.windows.name_file(self._store.suffix)
        self._file = await self._store.open(window, name)

    async def _close_file(self) -> None:
        if self._streams is not None:
            return  # exactly once: files are closed per stream (_close_streams)
        file, self._file = self._file, None
        if file is not None:
            await self._finish(file)
