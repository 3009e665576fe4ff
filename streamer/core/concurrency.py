"""Adaptive request concurrency: how many requests one sink keeps in flight.

AIMD, as TCP congestion control and Vector's adaptive request concurrency do.
The limit starts low and doubles per window of responses until the first
sign of saturation (slow start), then rises by one per window in which the
limit was reached and the destination showed no sign of saturation.  A window
lasts one round trip: at least the baseline RTT and as many responses as the
limit, and at least MIN_WINDOW_RESPONSES (fewer tell nothing about a share of
failures or of slow responses).  The limit is cut to DECREASE times itself
(never below 1, at most once per round trip):

* at once on a response that says the destination is saturated (a 503, a
  timeout): otherwise the slot a fast refusal frees is taken again at once
  and refused again, many times per round trip;
* at the end of a window with more other failures (5xx, 429, connection errors)
  than their usual share explains (an EWMA of past windows, plus three
  standard deviations and one), or failures in three quarters of its
  requests: a destination where 30% of requests fail whatever the load is not
  saturated, and sending less would not help it;
* at the end of the second window in a row where more than SLOW_SHARE of the
  responses were slower than the baseline RTT by RTT_THRESHOLD (and
  MIN_SLOWER_S): requests queue at the destination.  A share, not the mean,
  so that a few outliers do not count as queueing, and two windows, so that
  one stall of a busy event loop (which delays every response it holds) does
  not either: a queue at the destination stays while the limit does.

The baseline RTT is an EWMA of the windows' mean RTT (each RTT clipped at CLIP
baselines); it follows a destination that becomes slower for good, and the
limit climbs again there.  The limit stays within [1, `maximum`].  The
outcomes of requests sent before a decrease are not counted after it: they
answer for the old limit, which is already lowered.

Slots: `try_acquire` / `acquire` hand out a ticket, `release` takes it back
with the request's outcome (`renew` also hands a new one to the same caller).
No slot is handed out while as many tickets as the limit are out, so after a
decrease the requests above the new limit drain and none start until the
count is below it.  A ticket released twice or never handed out raises
`SlotError`: the accounting is checked, not trusted.

Pure: no I/O; the clock is injected.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections import deque
from collections.abc import Callable

RTT_EWMA_ALPHA = 0.4  # weight of the newest window in the baseline RTT
FAILURE_EWMA_ALPHA = 0.1  # weight of the newest window in the usual failure share
RTT_THRESHOLD = 0.5  # an RTT above baseline * (1 + this) is "slow"
SLOW_SHARE = 0.2  # a window with more slow responses than this share is queueing
CLIP = 1.5  # an RTT counts at most this many baselines in the baseline's update
# the multiplicative decrease: not a half, so that a decrease from just above what
# the destination takes stays above what it serves at once (Vector uses 0.9)
DECREASE = 0.75
MIN_SLOWER_S = 0.010  # and at least this much slower (noise of a busy event loop)
MIN_WINDOW_S = 0.001  # a window lasts at least this long, however fast the server
MIN_WINDOW_RESPONSES = 10  # and has at least this many responses


class Signal(enum.Enum):
    """What a request's outcome says about the destination's load."""

    ANSWERED = "answered"  # 2xx or a final 4xx: its RTT counts
    FAILED = "failed"  # 5xx but 503, 429, a connection error: may not depend on load
    OVERLOADED = "overloaded"  # a 503 or a timeout: the destination is full
    ABANDONED = "abandoned"  # cancelled, or a bug: says nothing about the destination


class SlotError(RuntimeError):
    """A slot released that was not handed out (or twice): a bug in the caller."""


class ConcurrencyLimit:
    """Slots for requests to one destination; see the module docstring."""

    def __init__(self, maximum: int, *, initial: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = max(1, maximum)
        self.limit = min(max(1, initial), self.maximum)
        self.baseline_rtt: float | None = None
        self.failure_share = 0.0  # the usual share of failed requests
        self.slow_start = True  # doubling per window until the first decrease
        self._clock = clock
        self._held: set[int] = set()  # the tickets handed out and not yet released
        self._next_ticket = 1
        self._waiters: deque[asyncio.Future[int]] = deque()
        self._window_start = clock()
        self._responses = 0
        self._failures = 0
        self._slow = 0
        self._rtt_sum = 0.0
        self._slow_above = math.inf  # the RTT above which a response is slow
        self._clip = math.inf
        self._reached = False  # the limit was reached in this window
        self._queueing = False  # the last window looked like a queue at the destination
        self._no_decrease_until = 0.0
        # requests sent before the last decrease answer for the old limit: not counted
        self._first_counted = 0

    @property
    def in_flight(self) -> int:
        return len(self._held)

    # -- slots ----------------------------------------------------------------------
    def try_acquire(self) -> int:
        """A ticket (> 0) if a slot is free and nobody waits for one, else 0."""
        if len(self._held) < self.limit and not self._waiters:
            return self._take()
        return 0

    async def acquire(self) -> int:
        """A ticket, once a slot is free (in the order the callers asked)."""
        ticket = self.try_acquire()
        if ticket:
            return ticket
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # the slot was handed over as this caller was cancelled
                self.release(waiter.result(), 0.0, Signal.ABANDONED)
            else:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                self._wake()  # a caller that queued behind this one may go now
            raise

    def release(self, ticket: int, rtt: float, signal: Signal) -> None:
        """The request holding `ticket` is over after `rtt` seconds."""
        self._forget(ticket, rtt, signal)
        self._wake()

    def renew(self, ticket: int, rtt: float, signal: Signal) -> int:
        """`release`, then a new ticket for the same caller if the limit (as this
        outcome left it) has room, else 0.  Ahead of the waiters: for callers that
        take their slot before their work (the sink's workers), any of them is as
        good as another, and a worker going on with its slot is cheaper than one
        parked and another woken."""
        self._forget(ticket, rtt, signal)
        ticket = self._take() if len(self._held) < self.limit else 0
        self._wake()
        return ticket

    def _forget(self, ticket: int, rtt: float, signal: Signal) -> None:
        try:
            self._held.remove(ticket)
        except KeyError:
            raise SlotError(f"slot {ticket} released but not held "
                            f"({len(self._held)} held, limit {self.limit})") from None
        if signal is not Signal.ABANDONED and ticket >= self._first_counted:
            self._observe(rtt, signal)

    def _take(self) -> int:
        held = self._held
        if len(held) >= self.limit:
            raise SlotError(f"slot handed out above the limit ({len(held)} held, "
                            f"limit {self.limit})")
        ticket = self._next_ticket
        self._next_ticket = ticket + 1
        held.add(ticket)
        if len(held) >= self.limit:
            self._reached = True
        return ticket

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and len(self._held) < self.limit:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(self._take())

    # -- outcomes -------------------------------------------------------------------
    def _observe(self, rtt: float, signal: Signal) -> None:
        now = self._clock()
        self._responses += 1
        if signal is Signal.ANSWERED:
            self._rtt_sum += min(rtt, self._clip)
            if rtt > self._slow_above:
                self._slow += 1
        else:
            self._failures += 1
            if signal is Signal.OVERLOADED:
                self._decrease(now)
                return
        responses = self._responses
        if responses >= self.limit and responses >= MIN_WINDOW_RESPONSES and \
                now - self._window_start >= max(self.baseline_rtt or 0.0, MIN_WINDOW_S):
            self._end_window(now)

    def _decrease(self, now: float) -> None:
        if now < self._no_decrease_until:
            return  # one decrease per round trip: the others answer the same excess
        self.limit = max(1, int(self.limit * DECREASE))
        self._queueing = False
        self.slow_start = False
        self._no_decrease_until = now + max(self.baseline_rtt or 0.0, MIN_WINDOW_S)
        self._first_counted = self._next_ticket  # what the old limit caused counts once
        self._new_window(now)

    def _end_window(self, now: float) -> None:
        responses, failures = self._responses, self._failures
        answered = responses - failures
        usual = self.failure_share
        expected = responses * usual
        too_many_failures = failures * 4 > responses * 3 or \
            failures > expected + 3.0 * math.sqrt(expected * (1.0 - usual)) + 1.0
        slow = self._slow > SLOW_SHARE * answered + 1.0
        queueing = slow and self._queueing
        self._queueing = slow
        self.failure_share = usual + FAILURE_EWMA_ALPHA * (failures / responses - usual)
        if answered:
            mean = self._rtt_sum / answered
            baseline = self.baseline_rtt
            baseline = mean if baseline is None else baseline + RTT_EWMA_ALPHA * (
                mean - baseline)
            self.baseline_rtt = baseline
            self._slow_above = max(baseline * (1.0 + RTT_THRESHOLD), baseline + MIN_SLOWER_S)
            self._clip = baseline * CLIP
        if too_many_failures or queueing:
            self._decrease(now)
        elif slow:
            pass  # one slow window: no increase until the next one tells
        elif self._reached and self.limit < self.maximum:
            step = self.limit if self.slow_start else 1
            self.limit = min(self.maximum, self.limit + step)
        self._new_window(now)

    def _new_window(self, now: float) -> None:
        self._window_start = now
        self._responses = self._failures = self._slow = 0
        self._rtt_sum = 0.0
        self._reached = len(self._held) >= self.limit
