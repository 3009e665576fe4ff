"""Treasure Data sink: the driver.

Batches come from the sink's `BatchBuffer`; each becomes a `BatchDelivery` whose units
are requests (one per record for postback, spliced bodies of up to 500
records for ingest; see requests.py).  A fixed pool of `concurrency`
worker tasks pulls units in order across jobs, so requests stay in flight
across batch boundaries and no task is created per record.  Each unit ends
delivered or dead-lettered (retry.py decides); a job releases its batch's
acknowledgement once all of its records have.

Every request to the destination waits at one shared `Backoff` gate, so a
429 or a failing server pauses the whole sink, not just one request.  With
``retry.max_elapsed_s = 0`` a unit is retried until it succeeds or the
process is stopped (the undelivered batches are then read again from the
source's checkpoint: at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Histogram

from streamer.core import deadletter
from streamer.core.batch import Batch, BatchBuffer
from streamer.core.deadletter import BadInput
from streamer.core.retry import (
    Backoff,
    Outcome,
    classify_status,
    parse_retry_after,
    status_class,
)
from streamer.mapping.values import RecordMapper
from streamer.observability.log_limit import limit_group
from streamer.observability.masking import SecretMasker
from streamer.observability.metrics import Metrics
from streamer.pipeline.context import Context
from streamer.sinks.td.config import TdSinkConfig
from streamer.sinks.td.http_client import HttpClient, Response, error_reason
from streamer.sinks.td.requests import (
    FlatBatch,
    Target,
    Targets,
    ingest_requests,
    route,
)

log = logging.getLogger("streamer.sink.td")

ERROR_BODY_BYTES = 512  # how much of an error response goes into the reason
# read past it so that a secret echoed across the cut is whole when it is masked
ERROR_BODY_READ = ERROR_BODY_BYTES + 4096
MAX_UNDISPATCHED_JOBS = 2  # batches taken from the buffer but not yet handed out
DEAD_LETTER_FLUSH = 1000  # write a job's pending dead letters at least this often
RECOVERY_LOG_AFTER_S = 10.0  # "succeed again" is logged after failures this long
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def request_histogram(metrics: Metrics) -> Histogram:
    """streamer_td_request_duration_seconds{sink}, shared by every td sink."""
    return metrics.shared("td_request_seconds", lambda registry: Histogram(
        "streamer_td_request_duration_seconds",
        "Duration of one HTTP request to Treasure Data, any outcome",
        ["sink"], registry=registry, buckets=REQUEST_BUCKETS))


class BatchDelivery:
    """One batch in the sink: its units, and what became of its records."""

    __slots__ = ("batch", "dead", "flat", "groups", "pos", "remaining", "taken_at", "units")

    def __init__(self, batch: Batch, flat: FlatBatch) -> None:
        self.batch = batch
        self.flat = flat
        self.taken_at = time.monotonic()
        self.remaining = batch.count
        self.dead: list[dict[str, Any]] = []
        # postback: (target, record indices) groups walked record by record;
        # ingest: prebuilt (target, body, indices, count) units
        self.groups: list[tuple[Target, Sequence[int]]] = []
        self.units: list[tuple[Target, bytes, Any, int]] = []
        self.pos = [0, 0]  # [group or unit index, position in the group]

    def next_unit(self) -> tuple[Target, bytes, Any, int] | None:
        pos = self.pos
        if self.units:
            if pos[0] < len(self.units):
                pos[0] += 1
                return self.units[pos[0] - 1]
            return None
        groups = self.groups
        while pos[0] < len(groups):
            target, indices = groups[pos[0]]
            if pos[1] < len(indices):
                index = indices[pos[1]]
                pos[1] += 1
                return target, self.flat.raws[index], index, 1
            pos[0] += 1
            pos[1] = 0
        return None


class TdSink:
    def __init__(self, name: str, cfg: TdSinkConfig, buffer: BatchBuffer,
                 context: Context) -> None:
        self.name = name
        self._cfg = cfg
        self._mapper = RecordMapper(cfg.mapping) if cfg.mapping else None
        self._buffer = buffer
        self._metrics = context.metrics
        self._dead_letters = context.dead_letters
        self._stats = context.metrics.sink(name)
        self._targets = Targets(cfg, cfg.secret_key())
        self._mask = SecretMasker(self._targets.secrets()).mask
        retry = cfg.retry
        self._backoff = Backoff(retry.initial_backoff_ms / 1000, retry.max_backoff_ms / 1000)
        self._max_elapsed = retry.max_elapsed_s
        self._latency = request_histogram(context.metrics).labels(name)
        self._client: HttpClient | None = None
        self._heads: dict[str, bytes] = {}  # request bytes up to Content-Length, by table
        self._jobs: deque[BatchDelivery] = deque()  # jobs with units not yet handed out
        self._active: dict[int, BatchDelivery] = {}  # every unfinished job, by id
        self._more = asyncio.Event()
        self._room = asyncio.Event()
        self._closing = False
        self._in_flight = 0
        for event in ("requests_2xx", "requests_4xx", "requests_5xx", "requests_error",
                      "backoff_ms"):  # a sink rebuilt by a reload continues its counters
            self._stats.extra.setdefault(event, 0)
        self._backoff_ms_before = self._stats.extra["backoff_ms"]
        context.metrics.watch(name, self._gauges)

    @classmethod
    def takes_blocks(cls, cfg: TdSinkConfig) -> bool:
        return False  # requests are built line by line

    def close(self) -> None:
        self._metrics.unwatch(self.name, self._gauges)

    def _gauges(self) -> dict[str, float]:
        now = time.monotonic()
        oldest = min((j.batch.created for j in self._active.values()), default=None)
        return {"buffer_batches": self._buffer.depth,
                "buffer_bytes": self._buffer.buffered_bytes,
                "oldest_in_flight_s": max(self._buffer.oldest_age_s,
                                          now - oldest if oldest is not None else 0.0),
                "batches_in_flight": len(self._active),
                "requests_in_flight": self._in_flight,
                "backoff_remaining_s": self._backoff.remaining()}

    # -- lifecycle -----------------------------------------------------------------
    async def run(self) -> None:
        cfg = self._cfg
        # one connection per worker task at most: the workers bound the requests
        self._client = HttpClient(self._targets.origin, self._targets.headers,
                                  timeout_s=cfg.timeout_s, max_body=ERROR_BODY_READ)
        tasks = [asyncio.create_task(self._feed(), name=f"td-feed:{self.name}")]
        tasks += [asyncio.create_task(self._worker(), name=f"td-worker:{self.name}")
                  for _ in range(cfg.concurrency)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._client.close()
            self._client = None

    async def _feed(self) -> None:
        while True:
            while len(self._jobs) >= MAX_UNDISPATCHED_JOBS:
                self._room.clear()
                await self._room.wait()
            batch = await self._buffer.get()
            if batch is None:
                break
            self._start(batch)  # type: ignore[arg-type]
        self._closing = True
        self._more.set()

    def _start(self, batch: Batch) -> None:
        self._metrics.batch_records.labels(self.name).observe(batch.count)
        flat = FlatBatch.of(batch, self._mapper)
        job = BatchDelivery(batch, flat)
        self._active[id(job)] = job
        # without table routing only the count matters: the bytes are not decoded
        routes = route(flat.records if self._cfg.table_field else flat.raws,
                       self._cfg.table_field, self._cfg.table, flat.unmapped)
        rejected = flat.unmapped + routes.rejected
        if self._cfg.api == "ingest":
            requests, oversize = ingest_requests(flat, routes)
            rejected = rejected + oversize
            job.units = [(self._targets.get(r.table), r.body, r.indices, len(r.indices))
                         for r in requests]
        else:
            job.groups = [(self._targets.get(table), indices)
                          for table, indices in routes.groups.items() if indices]
        for item in rejected:
            self._reject(job, item.index, None, item.reason, item.table)
        if rejected:
            self._done(job, len(rejected))
        if job.units or job.groups:
            self._jobs.append(job)
            self._more.set()

    # -- workers -------------------------------------------------------------------
    def _take(self) -> tuple[BatchDelivery, tuple[Target, bytes, Any, int]] | None:
        jobs = self._jobs
        while jobs:
            job = jobs[0]
            unit = job.next_unit()
            if unit is not None:
                return job, unit
            jobs.popleft()
            self._room.set()
        return None

    async def _worker(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                if self._closing:
                    return
                self._more.clear()
                await self._more.wait()
                continue
            job, (target, body, ref, count) = taken
            await self._deliver(job, target, body, ref, count)

    async def _deliver(self, job: BatchDelivery, target: Target, body: bytes, ref: Any,
                       count: int) -> None:
        backoff = self._backoff
        started = time.monotonic()
        while True:
            if backoff.closed():
                await backoff.wait()
            epoch = backoff.epoch
            status, retry_after, reason = await self._send(target, body)
            outcome = Outcome.RETRY if status is None else classify_status(status)
            if outcome is Outcome.DELIVERED:
                backoff.success()
                stats = self._stats
                if stats.failing_since is not None:
                    self._on_recovered()
                stats.delivered += count
                stats.delivered_bytes += len(body)
                break
            if outcome is Outcome.REJECTED:
                self._reject(job, ref, status, reason, target.table)
                break
            waited = time.monotonic() - started
            if self._max_elapsed and waited >= self._max_elapsed:
                self._reject(job, ref, status, f"gave up after {waited:.1f}s of retries "
                             f"(retry.max_elapsed_s = {self._max_elapsed:g}); last error: "
                             f"{reason}", target.table)
                break
            self._stats.retried += 1
            before = backoff.paused_s
            delay = backoff.failure(epoch, retry_after)
            if backoff.paused_s != before:
                self._stats.extra["backoff_ms"] = (self._backoff_ms_before
                                                   + int(backoff.paused_s * 1000))
            self._on_failure(target, reason, delay)
        self._done(job, count)

    async def _send(self, target: Target, body: bytes) -> tuple[int | None, float | None, str]:
        """One POST: (status or None, Retry-After seconds, reason if not 2xx)."""
        client = self._client
        assert client is not None
        head = self._heads.get(target.table)
        if head is None:
            head = self._heads[target.table] = client.head(target.request_target)
        extra = self._stats.extra
        self._in_flight += 1
        begin = time.perf_counter()
        try:
            response = await client.post(head, body)
        except OSError as exc:  # TimeoutError, refused, reset, a broken response...
            extra["requests_error"] += 1
            return None, None, self._mask(error_reason(exc))
        except Exception as exc:
            # a bug: stop the sink, with no key in the message
            raise self._redacted(exc) from None
        finally:
            self._in_flight -= 1
            self._latency.observe(time.perf_counter() - begin)
        status = response.status
        if 200 <= status < 300:
            extra["requests_2xx"] += 1
            return status, None, ""
        event = f"requests_{status_class(status)}"
        extra[event] = extra.get(event, 0) + 1
        return status, parse_retry_after(response.retry_after), self._reason(response)

    def _reason(self, response: Response) -> str:
        """"HTTP <status>: <body>", masked before it is cut (a secret echoed
        across the cut is masked whole) and after (a cut copy is masked too)."""
        status = response.status
        text = self._mask(response.body.decode("utf-8", "replace").strip())
        if len(text) > ERROR_BODY_BYTES:
            text = self._mask(text[:ERROR_BODY_BYTES]) + " [cut]"
        if 300 <= status < 400:
            host = urlsplit(response.location or "").hostname or "none"
            text = (f"a redirect, which is not followed (Location host: "
                    f"{self._mask(host)}){'; ' + text if text else ''}")
        return f"HTTP {status}: {text}" if text else f"HTTP {status}"

    def _redacted(self, exc: BaseException) -> RuntimeError:
        return RuntimeError(f"td sink {self.name}: {type(exc).__name__}: "
                            f"{self._mask(str(exc))}")

    # -- outcomes ------------------------------------------------------------------
    def _reject(self, job: BatchDelivery, ref: Any, status: int | None, reason: str,
                table: str | None) -> None:
        """Queue dead letters for the records `ref` (an index or indices);
        `table` is None when the record named no valid table."""
        indices = (ref,) if isinstance(ref, int) else ref
        flat = job.flat
        extra: dict[str, Any] = {} if table is None else {"table": table}
        if status is not None:
            extra["status"] = status
        for index in indices:
            origin = flat.origin(index)
            job.dead.append(deadletter.entry(
                self.name, origin.stream, BadInput(origin.offset, reason, flat.original(index)),
                source=origin.source, api=self._cfg.api, database=self._cfg.database, **extra))
        if len(job.dead) >= DEAD_LETTER_FLUSH:
            self._write_dead(job)

    def _write_dead(self, job: BatchDelivery) -> None:
        if not job.dead:
            return
        entries, job.dead = job.dead, []
        self._dead_letters.write(self.name, entries)
        self._stats.dead_lettered += len(entries)
        log.warning("td sink %s: %d record(s) dead-lettered: %s", self.name, len(entries),
                    entries[0]["reason"][:300])

    def _done(self, job: BatchDelivery, count: int) -> None:
        job.remaining -= count
        if job.remaining:
            return
        self._write_dead(job)
        del self._active[id(job)]
        job.batch.release()
        self._metrics.sink_latency.labels(self.name).observe(
            time.monotonic() - job.taken_at)

    def _on_failure(self, target: Target, reason: str, delay: float) -> None:
        self._stats.failed(f"POST {target.path}: {reason}")
        # repeats are counted by the log handler (log_limit.py), per sink
        log.warning("td sink %s: POST %s failed: %s; all requests paused %.2fs", self.name,
                    target.path, reason, max(delay, self._backoff.remaining()),
                    extra=limit_group(self.name))

    def _on_recovered(self) -> None:
        since = self._stats.failing_since
        self._stats.recovered()
        if since is not None and time.monotonic() - since >= RECOVERY_LOG_AFTER_S:
            log.info("td sink %s: requests succeed again after %.1fs of failures",
                     self.name, time.monotonic() - since)
