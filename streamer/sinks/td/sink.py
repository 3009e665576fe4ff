"""Treasure Data sink: the driver.

Batches come from the sink's `BatchBuffer`; each becomes a `BatchDelivery` whose units
are requests (one per record for postback, spliced bodies of up to 500
records for ingest; see requests.py).  A fixed pool of `concurrency`
worker tasks pulls units in order across jobs, so requests stay in flight
across batch boundaries and no task is created per record.  How many of them
send at once follows the destination (`ConcurrencyLimit`, core/concurrency.py): a
worker takes a slot before its unit and keeps it for its next unit while the
limit has room; a request holds one slot from just before it is sent until
its outcome is known (released on every way out: a cancel or an exception
too), and a retry takes a slot again.  Each unit ends delivered or
dead-lettered (retry.py decides); a job releases its batch's acknowledgement
once all of its records have.

A 5xx, a timeout or a connection error retries that one request after its
own exponential, fully jittered delay: one failing backend of several does
not pause the others (a saturated destination is answered by the lower
limit).  A request waiting for its retry holds no worker: it waits in a heap
by due time, which the workers serve before new requests; while
RETRY_BACKLOG_PER_SLOT x `concurrency` requests wait there, no new request is
taken (what the sink holds stays bounded when everything fails).

A 429 or any response with ``Retry-After`` is the server asking everyone to
wait: it closes one shared `Backoff` gate that every request waits at before
it is sent (no retry storm).  With
``retry.max_elapsed_s = 0`` a unit is retried until it succeeds or the
process is stopped (the undelivered batches are then read again from the
source's checkpoint: at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from prometheus_client import Histogram

from streamer.core.batch import Batch, BatchBuffer
from streamer.core.concurrency import ConcurrencyLimit, Signal
from streamer.core.retry import Backoff
from streamer.mapping.values import RecordMapper
from streamer.observability.masking import SecretMasker
from streamer.observability.metrics import Metrics
from streamer.pipeline.context import Context
from streamer.sinks.td.config import TdSinkConfig
from streamer.sinks.td.delivery import UnitDelivery
from streamer.sinks.td.failures import ERROR_BODY_BYTES, FailureReport
from streamer.sinks.td.http_client import HttpClient
from streamer.sinks.td.requests import (
    FlatBatch,
    Targets,
    ingest_requests,
    route,
)
from streamer.sinks.td.units import BatchDelivery, RetryDelays, RetryQueue, Unit

log = logging.getLogger("streamer.sink.td")

# read past the reason's cut so that a secret echoed across it is whole when masked
ERROR_BODY_READ = ERROR_BODY_BYTES + 4096
MAX_UNDISPATCHED_JOBS = 2  # batches taken from the buffer but not yet handed out
INITIAL_CONCURRENCY = 4  # the adaptive limit starts here (or at `concurrency` if lower)
RETRY_BACKLOG_PER_SLOT = 4  # requests waiting for their retry, per `concurrency`
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def request_histogram(metrics: Metrics) -> Histogram:
    """streamer_td_request_duration_seconds{sink}, shared by every td sink."""
    return metrics.shared("td_request_seconds", lambda registry: Histogram(
        "streamer_td_request_duration_seconds",
        "Duration of one HTTP request to Treasure Data, any outcome",
        ["sink"], registry=registry, buckets=REQUEST_BUCKETS))


class TdSink(UnitDelivery):
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
        self._report = FailureReport(name, self._stats,
                                     SecretMasker(self._targets.secrets()).mask)
        retry = cfg.retry
        self._backoff = Backoff(retry.initial_backoff_ms / 1000, retry.max_backoff_ms / 1000)
        self._max_elapsed = retry.max_elapsed_s
        self._limit = ConcurrencyLimit(cfg.concurrency,
                                       initial=min(INITIAL_CONCURRENCY, cfg.concurrency))
        self._retries = RetryQueue()
        self._delays = RetryDelays(self._backoff, self._limit)
        self._retry_backlog = RETRY_BACKLOG_PER_SLOT * cfg.concurrency
        self._latency = request_histogram(context.metrics).labels(name)
        self._client: HttpClient | None = None
        self._heads: dict[str, bytes] = {}  # request bytes up to Content-Length, by table
        self._jobs: deque[BatchDelivery] = deque()  # jobs with units not yet handed out
        self._active: dict[int, BatchDelivery] = {}  # every unfinished job, by id
        self._more = asyncio.Event()
        self._room = asyncio.Event()
        self._closing = False
        # a sink rebuilt by a reload continues its counters
        for event in ("requests_2xx", "requests_4xx", "requests_5xx", "requests_error",
                      "requests_resent", "backoff_ms"):
            self._stats.extra.setdefault(event, 0)
        self._backoff_ms_before = self._stats.extra["backoff_ms"]
        context.metrics.watch(name, self._gauges)

    @classmethod
    def takes_blocks(cls, cfg: TdSinkConfig) -> bool:
        return False  # requests are built line by line

    def close(self) -> None:
        self._metrics.unwatch(self.name, self._gauges)

    def _resent(self) -> None:
        self._stats.extra["requests_resent"] += 1

    def _gauges(self) -> dict[str, float]:
        now = time.monotonic()
        oldest = min((j.batch.created for j in self._active.values()), default=None)
        return {"buffer_batches": self._buffer.depth,
                "buffer_bytes": self._buffer.buffered_bytes,
                "oldest_in_flight_s": max(self._buffer.oldest_age_s,
                                          now - oldest if oldest is not None else 0.0),
                "batches_in_flight": len(self._active),
                "requests_in_flight": self._limit.in_flight,
                "concurrency_limit": self._limit.limit,
                "backoff_remaining_s": self._backoff.remaining()}

    # -- lifecycle -----------------------------------------------------------------
    async def run(self) -> None:
        cfg = self._cfg
        # one connection per worker task at most: the workers bound the requests
        self._client = HttpClient(self._targets.origin, self._targets.headers,
                                  timeout_s=cfg.timeout_s, max_body=ERROR_BODY_READ,
                                  proxy=self._targets.proxy, on_resent=self._resent)
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
    def _take(self) -> tuple[BatchDelivery, Unit, int, float] | None:
        """(job, unit, retries so far, first attempt's time), a due retry first."""
        retries = self._retries
        if retries:
            due = retries.pop_due()
            if due is not None:
                return due
            if len(retries) >= self._retry_backlog:
                return None
        jobs = self._jobs
        while jobs:
            job = jobs[0]
            unit = job.next_unit()
            if unit is not None:
                return job, unit, 0, 0.0
            jobs.popleft()
            self._room.set()
        return None

    async def _worker(self) -> None:
        """Takes a slot, then a unit: a worker waiting for a slot holds no unit, so
        the workers may pass each other (`ConcurrencyLimit.renew`) without a unit
        waiting behind them."""
        limit = self._limit
        ticket = 0
        try:
            while True:
                if not ticket:
                    ticket = limit.try_acquire() or await limit.acquire()
                taken = self._take()
                if taken is None:
                    limit.release(ticket, 0.0, Signal.ABANDONED)
                    ticket = 0
                    retries = self._retries
                    if self._closing and not retries:
                        return
                    self._more.clear()
                    if not retries:
                        await self._more.wait()
                        continue
                    with contextlib.suppress(TimeoutError):  # until the next retry is due
                        async with asyncio.timeout(retries.wait_s()):
                            await self._more.wait()
                    continue
                job, (target, body, ref, count), attempts, started = taken
                held, ticket = ticket, 0  # _deliver owns it now, and returns its successor
                ticket = await self._deliver(job, target, body, ref, count, attempts,
                                             started, held)
        finally:
            if ticket:
                limit.release(ticket, 0.0, Signal.ABANDONED)
