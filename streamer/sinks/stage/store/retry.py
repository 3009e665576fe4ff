"""Stage store operations (and local disk writes) retried until they pass.

Every operation of one store waits at one shared gate (`streamer.core.retry.Backoff`:
exponential, fully jittered), so a failing destination pauses all of them
instead of each backing off alone.  Meanwhile the sink shows as failing
(/health), and it recovers at the next success.

An operation run with a `ConcurrencyLimit` (the S3 uploads) holds one of its
slots for each attempt, from just before it is sent until its outcome is known
(not while it waits at the gate), and tells the limit what the outcome says
about the destination: `overloaded` failures (S3's 503 SlowDown, a timeout)
lower it at once, other failures are judged against their usual share.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from streamer.core.concurrency import ConcurrencyLimit, Signal
from streamer.core.retry import Backoff
from streamer.network.certificates import certificate_rejected
from streamer.observability.metrics import SinkStats

log = logging.getLogger("streamer.sink.stage")

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0

ErrorClasses = tuple[type[BaseException], ...]


class FatalStageError(Exception):
    """A stage file cannot be completed and its data is gone from memory (an S3
    multipart upload vanished): the sink stops; its batches were never
    acknowledged, so the sources send them again after a restart."""


class StageRefused(Exception):
    """The destination refuses the stage for good (no such bucket, access denied,
    bad credentials): a one-shot run stops on it instead of retrying until killed."""


class Retry:
    """Runs operations until they pass; `errors` are retried, `fatal` ones among
    them raise FatalStageError, anything else is raised as it is.  `refused` ones
    (retrying does not change them, an operator does) raise StageRefused when
    `stop_when_refused` (a one-shot run), else are retried with the sink degraded."""

    def __init__(self, stats: SinkStats, sink: str,
                 errors: ErrorClasses | Callable[[], ErrorClasses],
                 reason_of: Callable[[BaseException], str] = str,
                 fatal: Callable[[BaseException], bool] = lambda exc: False,
                 timeout_s: float | None = None, backoff: Backoff | None = None,
                 overloaded: Callable[[BaseException], bool] = lambda exc: False,
                 refused: Callable[[BaseException], bool] = lambda exc: False,
                 stop_when_refused: bool = False,
                 on_refused: Callable[[], Awaitable[Any]] | None = None) -> None:
        """`on_refused`: awaited after each refusal the daemon retries (the S3 store
        renews its clients there when the credentials file was rotated)."""
        self._stats = stats
        self.sink = sink
        # a function: the S3 store's error classes come with the AWS SDK, loaded later
        self._errors = errors if callable(errors) else lambda: errors
        self._reason_of = reason_of
        self._fatal = fatal
        self._overloaded = overloaded
        self._refused = refused
        self._stop_when_refused = stop_when_refused
        self.on_refused = on_refused
        self._gate = backoff or Backoff(INITIAL_BACKOFF_S, MAX_BACKOFF_S)
        self._timeout = timeout_s  # per attempt (a peer that stops reading never times out)

    async def run(self, what: str, func: Callable[..., Any], *args: Any,
                  limit: ConcurrencyLimit | None = None) -> Any:
        while True:
            if self._gate.closed():
                await self._gate.wait()
            epoch = self._gate.epoch
            if limit is not None:  # a slot per attempt, taken before its timeout starts
                ticket = limit.try_acquire() or await limit.acquire()
                if self._gate.closed():  # it closed while this attempt waited for a slot
                    limit.release(ticket, 0.0, Signal.ABANDONED)
                    continue
            signal = Signal.ABANDONED
            started = time.monotonic()
            try:
                result = func(*args)
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, self._timeout)
                signal = Signal.ANSWERED
            except Exception as exc:
                if not isinstance(exc, self._errors()):
                    raise
                signal = Signal.OVERLOADED if self._overloaded(exc) else Signal.FAILED
                if self._fatal(exc):
                    raise FatalStageError(f"stage sink {self.sink}: {what}: "
                                          f"{self._reason_of(exc)}") from exc
                refused = self._refused(exc)
                if refused and self._stop_when_refused:
                    raise StageRefused(f"stage sink {self.sink}: {what}: "
                                       f"{self._reason_of(exc)}") from exc
                rejected = certificate_rejected(exc)
                reason = f"{what}: {self._reason_of(exc)}"
                self._gate.failure(epoch)
                self._stats.failed(reason, refused=refused or rejected)
                if rejected:  # no retry mends it: a one-shot run gives up at once
                    self._stats.hopeless = reason
                self._stats.retried += 1
                log.warning("stage sink %s: %s failed (%s)%s; retrying in %.1fs",
                            self.sink, what, self._reason_of(exc),
                            " (refused: the bucket or the credentials need an operator)"
                            if refused else " (the endpoint's certificate does not verify: "
                            "its CA must be trusted, e.g. AWS_CA_BUNDLE)" if rejected else "",
                            self._gate.remaining())
                if refused and self.on_refused is not None:
                    await self.on_refused()
                continue
            finally:
                if limit is not None:
                    limit.release(ticket, time.monotonic() - started, signal)
            self._gate.success()
            self._stats.recovered()
            return result
