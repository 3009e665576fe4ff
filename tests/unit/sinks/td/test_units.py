"""How long a failed TD request waits for its retry (RetryDelays)."""

from __future__ import annotations

import random

from streamer.core.concurrency import ConcurrencyLimit, Signal
from streamer.core.retry import Backoff
from streamer.sinks.td.units import DOWN_STREAK, PARTIAL_RETRY_RTTS, RetryDelays


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limit_with_rtt(rtt: float) -> ConcurrencyLimit:
    """A limit of 16 whose baseline RTT is `rtt` (one window of answers)."""
    clock = Clock()
    limit = ConcurrencyLimit(16, initial=16, clock=clock)
    tickets = [limit.try_acquire() for _ in range(16)]
    clock.now = 1.0
    for ticket in tickets:
        limit.release(ticket, rtt, Signal.ANSWERED)
    assert limit.baseline_rtt is not None and abs(limit.baseline_rtt - rtt) < 1e-9
    return limit


def test_a_partial_failure_is_retried_within_a_few_round_trips_then_later() -> None:
    rtt = 0.002
    delays = RetryDelays(Backoff(0.1, 10.0), limit_with_rtt(rtt), random.Random(1))
    for attempts in (1, 2, 3):
        ceiling = PARTIAL_RETRY_RTTS * rtt * 2 ** (attempts - 1)
        got = [delays.failed(attempts) for _ in range(3)]
        delays.answered()  # others succeed: still partial
        assert all(0.0 <= d <= ceiling for d in got), (attempts, got)
    # a request that keeps failing while others succeed: never later than the
    # initial backoff (a poison request is retried at that pace, not faster)
    for _ in range(20):
        assert delays.failed(40) <= 0.1
        delays.answered()


def test_a_slow_destination_waits_at_most_the_initial_backoff_at_first() -> None:
    delays = RetryDelays(Backoff(0.1, 10.0), limit_with_rtt(0.5), random.Random(2))
    assert all(delays.failed(1) <= 0.1 for _ in range(5))


def test_a_destination_failing_as_a_whole_backs_off_from_the_initial_delay() -> None:
    delays = RetryDelays(Backoff(0.1, 10.0), limit_with_rtt(0.001), random.Random(3))
    streak = max(DOWN_STREAK, 16)
    for _ in range(streak - 1):
        delays.failed(1)
    got = [delays.failed(4) for _ in range(50)]  # down: 0.1 * 2**3 is the ceiling
    assert max(got) <= 0.8 and max(got) > PARTIAL_RETRY_RTTS * 0.001 * 8
    delays.answered()
    assert delays.failed(1) <= PARTIAL_RETRY_RTTS * 0.001
