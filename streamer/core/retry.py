"""Request outcomes and the backoff shared by every request to one destination.

Three outcomes per request:

* delivered: any 2xx;
* retry: 408, 429, 5xx, timeouts and connection errors;
* rejected: every other status (400, 403, 413, other 4xx, 1xx/3xx): the
  records go to the dead-letter file with the status and the reason.

`Backoff` is one gate per destination.  A retryable failure closes the gate
for an exponential, fully jittered delay (at least the server's
``Retry-After``); every request to that destination waits at the gate before
it is sent, so one 429 pauses them all instead of each request backing off
alone while the others keep firing (a retry storm).
Failures of requests that were already in flight when the gate closed do not
escalate the delay again: a wave of concurrent failures counts once.

Every retry loop of the daemon uses it, also those with a single caller (a
load job, a Kafka consumer's start): for them every failure escalates.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime

# a Retry-After beyond this is treated as this (a typo on the server side
# must not park the pipeline for a day)
RETRY_AFTER_CAP_S = 600.0


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


def classify_status(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in (408, 429) or 500 <= status < 600:
        return Outcome.RETRY
    return Outcome.REJECTED


def status_class(status: int | None) -> str:
    """"2xx", "4xx", "5xx", ... or "error" for a request that got no status."""
    return "error" if status is None else f"{status // 100}xx"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an
    HTTP-date), capped at RETRY_AFTER_CAP_S; None when absent or unparsable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


class Backoff:
    """The gate of one destination; see the module docstring.

    Usage per attempt::

        if backoff.closed():
            await backoff.wait()
        epoch = backoff.epoch
        ... send ...
        backoff.success()            # or
        backoff.failure(epoch, retry_after)

    A caller that retries alone passes no epoch: ``delay = backoff.failure()``,
    then ``await backoff.wait()``.
    """

    def __init__(self, initial_s: float, max_s: float, *,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self.epoch = 0  # bumped by every escalation
        self.level = 0  # consecutive escalations without a success
        self.resume_at = 0.0
        self.paused_s = 0.0  # wall-clock seconds the gate has been closed, in total

    def closed(self) -> bool:
        return self._clock() < self.resume_at

    def remaining(self) -> float:
        return max(0.0, self.resume_at - self._clock())

    async def wait(self) -> None:
        """Return once the gate is open (it may close again while waiting)."""
        while (delay := self.resume_at - self._clock()) > 0:
            await self._sleep(delay)

    def ceiling(self) -> float:
        """Upper bound of the next jittered delay."""
        if self.level <= 0:
            return 0.0
        return min(self.max_s, self.initial_s * 2.0 ** min(self.level - 1, 60))

    def failure(self, epoch: int | None = None, retry_after: float | None = None) -> float:
        """A request sent at `epoch` (None: the current one, for a caller that
        retries alone) failed with a retryable outcome; close the gate and return
        the delay chosen from now."""
        delay = 0.0
        if epoch is None or epoch == self.epoch:
            self.level += 1
            self.epoch += 1
            delay = self._rng.uniform(0.0, self.ceiling())
        if retry_after is not None:
            delay = max(delay, retry_after)
        now = self._clock()
        until = now + delay
        if until > self.resume_at:
            self.paused_s += until - max(self.resume_at, now)
            self.resume_at = until
        return delay

    def success(self) -> None:
        self.level = 0
