"""Outcome classification, Retry-After parsing and the shared per-destination backoff."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from streamer.core.retry import (
    RETRY_AFTER_CAP_S,
    Backoff,
    Outcome,
    classify_status,
    parse_retry_after,
    status_class,
)
from tests.helpers.clock import FakeClock


@pytest.mark.parametrize(("status", "outcome"), [
    (200, Outcome.DELIVERED), (201, Outcome.DELIVERED), (204, Outcome.DELIVERED),
    (408, Outcome.RETRY), (429, Outcome.RETRY), (500, Outcome.RETRY), (502, Outcome.RETRY),
    (503, Outcome.RETRY), (504, Outcome.RETRY), (599, Outcome.RETRY),
    (400, Outcome.REJECTED), (401, Outcome.REJECTED), (403, Outcome.REJECTED),
    (404, Outcome.REJECTED), (413, Outcome.REJECTED), (422, Outcome.REJECTED),
    (301, Outcome.REJECTED), (100, Outcome.REJECTED),
])
def test_classify_status(status: int, outcome: Outcome) -> None:
    assert classify_status(status) is outcome


def test_status_class() -> None:
    assert [status_class(s) for s in (200, 429, 503, None)] == ["2xx", "4xx", "5xx", "error"]


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("999999") == RETRY_AFTER_CAP_S
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 1, 1, 12, 0, 7, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == 7.0
    earlier = format_datetime(datetime(2026, 1, 1, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0



def make_backoff(clock: FakeClock, initial: float = 0.1, maximum: float = 10.0,
                 seed: int = 7) -> Backoff:
    return Backoff(initial, maximum, rng=random.Random(seed), clock=clock, sleep=clock.sleep)


def test_open_gate_costs_nothing() -> None:
    clock = FakeClock(1000.0)
    backoff = make_backoff(clock)
    assert not backoff.closed() and backoff.remaining() == 0.0
    backoff.success()
    assert backoff.level == 0 and backoff.epoch == 0


def test_exponential_full_jitter_ceiling_and_reset() -> None:
    clock = FakeClock(1000.0)
    backoff = make_backoff(clock, initial=0.1, maximum=1.0)
    ceilings, delays = [], []
    for _ in range(8):
        delays.append(backoff.failure(backoff.epoch))
        ceilings.append(backoff.ceiling())
        clock.now = backoff.resume_at
    assert ceilings == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered, not fixed steps
    backoff.success()
    assert backoff.level == 0 and backoff.ceiling() == 0.0


def test_jitter_is_full_range() -> None:
    clock = FakeClock(1000.0)
    delays = []
    for seed in range(200):
        backoff = make_backoff(clock, initial=1.0, seed=seed)
        delays.append(backoff.failure(0))
    assert min(delays) < 0.1 and max(delays) > 0.9 and all(0 <= d <= 1.0 for d in delays)


def test_a_wave_of_concurrent_failures_escalates_once() -> None:
    clock = FakeClock(1000.0)
    backoff = make_backoff(clock)
    sent_at = backoff.epoch  # 64 requests in flight, all sent before any failure
    for _ in range(64):
        backoff.failure(sent_at)
    assert backoff.level == 1 and backoff.epoch == 1
    backoff.failure(backoff.epoch)  # a request sent after the pause fails again
    assert backoff.level == 2


def test_retry_after_is_honoured_as_a_minimum() -> None:
    clock = FakeClock(1000.0)
    backoff = make_backoff(clock, initial=0.001, maximum=0.002)
    assert backoff.failure(0, retry_after=5.0) == 5.0
    assert backoff.remaining() == 5.0 and backoff.closed()
    # a stale failure (sent before the gate closed) with a longer Retry-After extends it
    assert backoff.failure(0, retry_after=8.0) == 8.0
    assert backoff.remaining() == 8.0
    assert backoff.level == 1  # ... without escalating
    assert backoff.paused_s == pytest.approx(8.0)  # the overlap is counted once


def test_paused_seconds_count_wall_time_once() -> None:
    clock = FakeClock(1000.0)
    backoff = make_backoff(clock)
    backoff.failure(0, retry_after=1.0)
    clock.now += 0.5
    backoff.failure(0, retry_after=1.0)  # overlaps by 0.5 s
    clock.now += 10
    backoff.failure(backoff.epoch, retry_after=2.0)
    assert backoff.paused_s == pytest.approx(1.5 + 2.0, abs=0.2)


async def test_one_failure_pauses_every_waiter() -> None:
    clock = FakeClock(1000.0)
    backoff = make_backoff(clock)
    start = clock.now
    backoff.failure(backoff.epoch, retry_after=3.0)
    sent: list[float] = []

    async def request() -> None:
        if backoff.closed():
            await backoff.wait()
        sent.append(clock.now)

    await asyncio.gather(*(request() for _ in range(10)))
    assert len(sent) == 10 and all(t >= start + 3.0 for t in sent)


async def test_gate_closed_again_while_waiting_is_respected() -> None:
    clock = FakeClock(1000.0)
    backoff = make_backoff(clock)
    backoff.failure(0, retry_after=1.0)
    waiter = asyncio.create_task(backoff.wait())
    await asyncio.sleep(0)
    backoff.failure(0, retry_after=4.0)  # another 429 arrives meanwhile
    await waiter
    assert clock.now >= 1000.0 + 4.0


async def test_a_caller_alone_escalates_on_every_failure_until_a_success() -> None:
    clock = FakeClock(1000.0)
    backoff = make_backoff(clock, initial=1.0, maximum=4.0)
    delays, ceilings = [], []
    for _ in range(4):
        delays.append(backoff.failure())  # no epoch: nobody else shares the gate
        ceilings.append(backoff.ceiling())
        await backoff.wait()
    assert ceilings == [1.0, 2.0, 4.0, 4.0]
    assert all(0.0 < d <= c for d, c in zip(delays, ceilings, strict=True))
    assert clock.sleeps == pytest.approx(delays)  # each wait lasts the delay it was given
    assert clock.now == pytest.approx(1000.0 + sum(delays))
    backoff.success()
    backoff.failure()
    assert backoff.level == 1 and backoff.ceiling() == 1.0  # back to the first delay
