"""Delivering one unit (a mixin of TdSink): its requests sent through the shared
gate and the adaptive limit, retried, halved on a 413, until it ends delivered or
dead-lettered; then its job's acknowledgement once all of its records have."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from streamer.core import deadletter
from streamer.core.concurrency import Signal
from streamer.core.deadletter import BadInput
from streamer.core.retry import Outcome, classify_status, parse_retry_after, status_class
from streamer.network.certificates import certificate_rejected
from streamer.sinks.td.requests import Target, ingest_halves
from streamer.sinks.td.units import BatchDelivery

if TYPE_CHECKING:
    from streamer.sinks.td.sink import TdSink

log = logging.getLogger("streamer.sink.td")

DEAD_LETTER_FLUSH = 1000  # write a job's pending dead letters at least this often
# answers that refuse the key or the destination (a wrong endpoint path, a database that
# does not exist), not the records: each kind is shown in /health and counted (api.py)
REFUSALS = {401: "key_refused", 403: "key_refused",
            404: "not_found", 405: "not_found", 410: "not_found"}


def refusal_of(status: int) -> str | None:
    """The refusal a status is, if any: a 3xx (not followed: the key would go to
    another host) says the endpoint is not where the config says, like a 404."""
    if 300 <= status < 400:
        return "not_found"
    return REFUSALS.get(status)


class UnitDelivery:
    """The delivering half of TdSink (a mixin: it shares the sink's state)."""

    def _retry_later(self: TdSink, delay: float, job: BatchDelivery, target: Target, body: bytes,
                     ref: Any, count: int, attempts: int, started: float) -> None:
        self._retries.push(delay, job, (target, body, ref, count), attempts, started)
        self._more.set()  # an idle worker waits for it (or for a sooner one)

    async def _deliver(self: TdSink, job: BatchDelivery, target: Target, body: bytes, ref: Any,
                       count: int, attempts: int, started: float, ticket: int) -> int:
        """Send one unit with the slot `ticket` (taken again for a retry after a
        pause); returns the slot the worker goes on with, or 0.  Every slot this
        holds is released on every way out, an exception or a cancel too."""
        backoff = self._backoff
        limit = self._limit
        if not started:
            started = time.monotonic()
        try:
            while True:
                if backoff.closed():
                    if ticket:
                        limit.release(ticket, 0.0, Signal.ABANDONED)
                        ticket = 0
                    await backoff.wait()
                if not ticket:
                    ticket = limit.try_acquire() or await limit.acquire()
                    if backoff.closed():  # it closed while this request waited for a slot
                        continue
                epoch = backoff.epoch
                begin = time.monotonic()
                status, retry_after, reason = await self._send(target, body)
                rtt = time.monotonic() - begin
                outcome = Outcome.RETRY if status is None else classify_status(status)
                # 429 / Retry-After: the server asks everyone to wait (the shared gate)
                throttled = status == 429 or retry_after is not None
                if outcome is not Outcome.RETRY:
                    signal = Signal.ANSWERED
                elif status == 503 or reason == "timeout":
                    signal = Signal.OVERLOADED
                else:  # judged against the usual share of failures (a 429 too)
                    signal = Signal.FAILED
                if throttled:  # this request waits at the gate: without a slot
                    limit.release(ticket, rtt, signal)
                    ticket = 0
                else:
                    ticket = limit.renew(ticket, rtt, signal)
                if outcome is not Outcome.RETRY:
                    self._delays.answered()
                if outcome is Outcome.DELIVERED:
                    backoff.success()
                    stats = self._stats
                    if stats.failing_since is not None:
                        self._report.recovered()
                    if stats.refusals:
                        stats.refusals.clear()
                    stats.delivered += count
                    stats.delivered_bytes += len(body)
                    break
                if outcome is Outcome.REJECTED:
                    if status == 413 and count > 1:  # too large for the endpoint, not a record
                        self._report.failed(target.path, f"{reason} (a request of {count} "
                                            "records: sent again in two)", 0.0, limit.limit)
                        for part, half in ingest_halves(job.flat, ref):
                            self._retry_later(0.0, job, target, half, part, len(part), 0,
                                              started)
                        return ticket
                    refusal = refusal_of(status)
                    if refusal is not None:  # not the records: the key or the destination
                        self._stats.refusals[refusal] = f"POST {target.path}: {reason}"
                        extra = self._stats.extra
                        extra[refusal] = extra.get(refusal, 0) + 1
                    self._reject(job, ref, status, reason, target.table)
                    break
                waited = time.monotonic() - started
                if self._max_elapsed and waited >= self._max_elapsed:
                    self._reject(job, ref, status,
                                 f"gave up after {waited:.1f}s of retries (retry.max_elapsed_s"
                                 f" = {self._max_elapsed:g}); last error: {reason}",
                                 target.table)
                    break
                self._stats.retried += 1
                if throttled:
                    before = backoff.paused_s
                    delay = backoff.failure(epoch, retry_after)
                    if backoff.paused_s != before:
                        self._stats.extra["backoff_ms"] = (self._backoff_ms_before
                                                           + int(backoff.paused_s * 1000))
                    self._report.paused(target.path, reason,
                                        max(delay, backoff.remaining()))
                    continue
                attempts += 1
                delay = self._delays.failed(attempts)
                self._report.failed(target.path, reason, delay, limit.limit)
                self._retry_later(delay, job, target, body, ref, count, attempts, started)
                return ticket
            self._done(job, count)
        except BaseException:
            if ticket:  # sent or not, this request is over: its slot goes back
                limit.release(ticket, 0.0, Signal.ABANDONED)
            raise
        return ticket

    async def _send(self: TdSink, target: Target,
                    body: bytes) -> tuple[int | None, float | None, str]:
        """One POST: (status or None, Retry-After seconds, reason if not 2xx)."""
        client = self._client
        assert client is not None
        head = self._heads.get(target.table)
        if head is None:
            head = self._heads[target.table] = client.head(target.request_target)
        extra = self._stats.extra
        begin = time.perf_counter()
        try:
            response = await client.post(head, body)
        except OSError as exc:  # TimeoutError, refused, reset, a broken response...
            extra["requests_error"] += 1
            reason = self._report.error(exc)
            if certificate_rejected(exc):
                # no retry mends it: a one-shot run stops on it at once (give_up.py)
                self._stats.hopeless = f"POST {target.path}: {reason}"
            return None, None, reason
        except Exception as exc:
            # a bug: stop the sink, with no key in the message
            raise self._report.redacted(exc) from None
        finally:
            self._latency.observe(time.perf_counter() - begin)
        status = response.status
        if 200 <= status < 300:
            extra["requests_2xx"] += 1
            return status, None, ""
        event = f"requests_{status_class(status)}"
        extra[event] = extra.get(event, 0) + 1
        return status, parse_retry_after(response.retry_after), self._report.response(response)

    # -- outcomes ------------------------------------------------------------------
    def _reject(self: TdSink, job: BatchDelivery, ref: Any, status: int | None, reason: str,
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

    def _write_dead(self: TdSink, job: BatchDelivery) -> None:
        if not job.dead:
            return
        entries, job.dead = job.dead, []
        self._dead_letters.write(self.name, entries)
        self._stats.dead_lettered += len(entries)
        log.warning("td sink %s: %d record(s) dead-lettered: %s", self.name, len(entries),
                    entries[0]["reason"][:300])

    def _done(self: TdSink, job: BatchDelivery, count: int) -> None:
        job.remaining -= count
        if job.remaining:
            return
        self._write_dead(job)
        del self._active[id(job)]
        job.batch.release()
        self._metrics.sink_latency.labels(self.name).observe(
            time.monotonic() - job.taken_at)
