"""The adaptive concurrency limit: slot accounting under random outcomes and
cancellations, and the controller against simulated destinations on a fake clock."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from streamer.core.concurrency import DECREASE, ConcurrencyLimit, Signal, SlotError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- slot accounting ---------------------------------------------------------------------

def test_a_slot_not_handed_out_or_released_twice_is_refused() -> None:
    limiter = ConcurrencyLimit(4, initial=2, clock=Clock())
    ticket = limiter.try_acquire()
    assert ticket and limiter.in_flight == 1
    with pytest.raises(SlotError, match="not held"):
        limiter.release(ticket + 1, 0.01, Signal.ANSWERED)
    limiter.release(ticket, 0.01, Signal.ANSWERED)
    with pytest.raises(SlotError, match="not held"):
        limiter.release(ticket, 0.01, Signal.ANSWERED)
    assert limiter.in_flight == 0


def test_no_slot_beyond_the_limit_and_none_after_a_decrease_until_drained() -> None:
    clock = Clock()
    limiter = ConcurrencyLimit(8, initial=8, clock=clock)
    tickets = [limiter.try_acquire() for _ in range(8)]
    assert all(tickets) and limiter.try_acquire() == 0
    clock.now = 1.0
    limiter.release(tickets.pop(), 0.001, Signal.OVERLOADED)  # a 503: lowered at once
    lowered = int(8 * DECREASE)
    assert lowered < 7 and limiter.limit == lowered and limiter.in_flight == 7
    while limiter.in_flight >= lowered:  # above the new limit: none may start
        assert limiter.try_acquire() == 0
        limiter.release(tickets.pop(), 0.01, Signal.ANSWERED)
    assert limiter.try_acquire() and limiter.try_acquire() == 0  # one below it: one may


def test_renew_keeps_the_slot_only_while_the_limit_has_room() -> None:
    clock = Clock()
    limiter = ConcurrencyLimit(8, initial=4, clock=clock)
    tickets = [limiter.try_acquire() for _ in range(4)]
    renewed = limiter.renew(tickets.pop(), 0.01, Signal.ANSWERED)
    assert renewed and renewed not in tickets and limiter.in_flight == 4
    with pytest.raises(SlotError):
        limiter.renew(renewed - 1, 0.01, Signal.ANSWERED)  # released already
    clock.now = 1.0
    assert limiter.renew(renewed, 0.001, Signal.OVERLOADED) == 0  # lowered to 3: full
    assert limiter.limit == 3 and limiter.in_flight == 3


@pytest.mark.parametrize("seed", range(8))
def test_in_flight_never_passes_the_limit_under_random_outcomes_and_cancellations(
        seed: int) -> None:
    """Tasks take slots, hold them across awaits, end with a random outcome (and
    release the slot or renew it for their next request) or are cancelled (while
    waiting for a slot or while holding one).  The test counts the
    slots held itself: the limiter's count is that plus at most the slots handed to
    waiters not yet resumed, a step never lets the count rise above the limit
    (above it, the count only drains), and all slots come back."""
    rng = random.Random(seed)
    clock = Clock()
    limiter = ConcurrencyLimit(16, initial=rng.randint(1, 16), clock=clock)
    held = 0
    waiting = 0  # tasks inside `acquire`
    observed = 0  # in flight at the last step of any task
    limits: list[int] = []
    signals = [Signal.ANSWERED] * 6 + [Signal.FAILED] * 2 + [Signal.OVERLOADED]

    def step() -> None:
        nonlocal observed
        in_flight = limiter.in_flight
        assert held <= in_flight <= held + waiting
        assert in_flight <= max(limiter.limit, observed), (in_flight, limiter.limit, observed)
        observed = in_flight
        limits.append(limiter.limit)

    async def request() -> None:
        nonlocal held, waiting
        carried = 0  # a slot renewed for the next request
        for _ in range(rng.randint(1, 6)):
            ticket, carried = carried, 0
            try:
                if not ticket:
                    ticket = limiter.try_acquire()
                    if ticket:
                        held += 1
                    else:
                        step()
                        waiting += 1
                        try:
                            ticket = await limiter.acquire()
                        finally:
                            waiting -= 1
                        held += 1
            except asyncio.CancelledError:
                step()  # a slot handed over as the waiter was cancelled is back
                raise
            step()
            signal = Signal.ABANDONED
            try:
                for _ in range(rng.randint(0, 3)):
                    await asyncio.sleep(0)
                clock.now += rng.uniform(0.0, 0.004)
                signal = rng.choice(signals)
            finally:
                rtt = rng.uniform(0.001, 0.02)
                if signal is not Signal.ABANDONED and rng.random() < 0.5:
                    carried = limiter.renew(ticket, rtt, signal)
                    held -= not carried
                else:
                    held -= 1
                    limiter.release(ticket, rtt, signal)
                step()
        if carried:
            held -= 1
            limiter.release(carried, 0.0, Signal.ABANDONED)
            step()

    async def main() -> None:
        tasks = [asyncio.ensure_future(request()) for _ in range(60)]
        for _ in range(40):
            await asyncio.sleep(0)
            for task in rng.sample(tasks, 3):
                task.cancel()
            step()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)
                  and not isinstance(r, asyncio.CancelledError)]
        assert not errors, errors[0]

    asyncio.run(main())
    assert held == limiter.in_flight == 0
    assert limiter.try_acquire()  # nobody is left waiting, the slots are free
    assert min(limits) >= 1 and max(limits) <= 16


def test_waiters_get_freed_slots_in_order() -> None:
    async def main() -> list[int]:
        limiter = ConcurrencyLimit(4, initial=1, clock=Clock())
        order: list[int] = []

        async def request(n: int) -> None:
            ticket = await limiter.acquire()
            order.append(n)
            await asyncio.sleep(0)
            limiter.release(ticket, 0.0, Signal.ANSWERED)

        await asyncio.gather(*(request(n) for n in range(5)))
        assert limiter.in_flight == 0
        return order

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_a_cancelled_waiter_does_not_keep_a_slot_nor_block_the_next() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimit(1, clock=Clock())
        first = await limiter.acquire()
        cancelled = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        cancelled.cancel()
        after = asyncio.ensure_future(limiter.acquire())  # queued behind the cancelled one
        await asyncio.gather(cancelled, return_exceptions=True)
        limiter.release(first, 0.0, Signal.ANSWERED)
        ticket = await asyncio.wait_for(after, 1)
        assert limiter.in_flight == 1
        limiter.release(ticket, 0.0, Signal.ANSWERED)
        assert limiter.in_flight == 0 and limiter.try_acquire()

    asyncio.run(main())


def test_a_slot_handed_over_to_a_cancelled_waiter_comes_back() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimit(1, clock=Clock())
        first = await limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        limiter.release(first, 0.0, Signal.ANSWERED)  # handed to the waiter...
        waiter.cancel()  # ...which is cancelled before it runs
        await asyncio.gather(waiter, return_exceptions=True)
        assert waiter.cancelled() and limiter.in_flight == 0 and limiter.try_acquire()

    asyncio.run(main())


# -- the controller on a fake clock -----------------------------------------------------

def run_round(limiter: ConcurrencyLimit, clock: Clock, capacity: int, base_rtt: float,
              queue: int = 4) -> tuple[int, int]:
    """Send as many requests as the limit allows, all at once, to a destination
    that serves `capacity` at a time, queues `queue` more (each queued request
    waits one more service time) and refuses the rest with a 503.  Returns
    (sent, refused)."""
    tickets = []
    while ticket := limiter.try_acquire():
        tickets.append(ticket)
    refused = 0
    clock.now += base_rtt * 1.001  # just past one window
    for i, ticket in enumerate(tickets):
        if i >= capacity + queue:
            refused += 1
            limiter.release(ticket, base_rtt / 10, Signal.OVERLOADED)
        else:
            limiter.release(ticket, base_rtt * (1 + i // max(capacity, 1)), Signal.ANSWERED)
    return len(tickets), refused


def test_converges_to_the_capacity_and_never_passes_the_maximum() -> None:
    clock = Clock()
    limiter = ConcurrencyLimit(64, initial=4, clock=clock)
    sent_refused = [run_round(limiter, clock, capacity=10, base_rtt=0.01) for _ in range(300)]
    late = sent_refused[100:]
    assert all(sent <= 64 for sent, _ in sent_refused)
    mean_sent = sum(sent for sent, _ in late) / len(late)
    refused = sum(r for _, r in late) / sum(s for s, _ in late)
    assert 8 <= mean_sent <= 16, mean_sent  # around the capacity (10), not at 64
    assert refused <= 0.05, refused


def test_slow_start_doubles_then_rises_one_per_window_up_to_the_maximum() -> None:
    clock = Clock()
    limiter = ConcurrencyLimit(40, initial=1, clock=clock)
    limits = [1]
    for _ in range(40):  # a window has at least 10 responses: 10 rounds at a limit of 1
        run_round(limiter, clock, capacity=100, base_rtt=0.01)
        limits.append(limiter.limit)
    assert [limit for limit, _ in itertools.groupby(limits)] == [1, 2, 4, 8, 16, 32, 40]
    limiter = ConcurrencyLimit(40, initial=8, clock=clock)
    run_round(limiter, clock, capacity=0, base_rtt=0.01, queue=0)  # ends the slow start
    assert limiter.limit == int(8 * DECREASE) and not limiter.slow_start
    limits = [limiter.limit]
    for _ in range(80):
        run_round(limiter, clock, capacity=100, base_rtt=0.01)
        limits.append(limiter.limit)
    assert all(after - before in (0, 1) for before, after in itertools.pairwise(limits))
    assert limits[-1] == 40


def test_decreases_at_most_once_per_round_trip_and_never_below_one() -> None:
    clock = Clock()
    limiter = ConcurrencyLimit(64, initial=32, clock=clock)
    run_round(limiter, clock, capacity=100, base_rtt=0.01)
    limits = [limiter.limit]
    for _ in range(20):  # a destination refusing everything: one decrease per round trip
        run_round(limiter, clock, capacity=0, base_rtt=0.01, queue=0)
        limits.append(limiter.limit)
    assert all(after == max(1, int(before * DECREASE))
               for before, after in itertools.pairwise(limits))
    assert limits[-1] == 1


def test_random_failures_that_do_not_depend_on_the_load_do_not_pin_the_limit() -> None:
    """30% of requests fail (a 500, a dropped connection) whatever the load:
    sending less would not help."""
    clock = Clock()
    limiter = ConcurrencyLimit(64, initial=4, clock=clock)
    rng = random.Random(7)
    limits = []
    for _ in range(400):
        tickets = []
        while ticket := limiter.try_acquire():
            tickets.append(ticket)
        clock.now += 0.01
        for ticket in tickets:
            limiter.release(ticket, 0.01,
                            Signal.FAILED if rng.random() < 0.3 else Signal.ANSWERED)
        limits.append(limiter.limit)
    assert sum(limits[200:]) / 200 >= 32, limits[200:]


def test_backs_off_on_rising_latency_and_recovers_after() -> None:
    clock = Clock()
    limiter = ConcurrencyLimit(32, initial=1, clock=clock)
    for _ in range(40):
        run_round(limiter, clock, capacity=100, base_rtt=0.01)
    assert limiter.limit == 32
    for _ in range(8):  # the destination becomes 4 times slower: no errors, only latency
        run_round(limiter, clock, capacity=100, base_rtt=0.04)
    assert limiter.limit <= 16
    low = limiter.limit
    for _ in range(100):  # it stays slow: the baseline follows, the limit climbs again
        run_round(limiter, clock, capacity=100, base_rtt=0.04)
    assert limiter.limit == 32 > low


def test_one_stall_of_the_event_loop_is_not_a_queue() -> None:
    """Every response of one window late (the client's loop was busy): no decrease."""
    clock = Clock()
    limiter = ConcurrencyLimit(32, initial=32, clock=clock)
    for _ in range(5):
        run_round(limiter, clock, capacity=100, base_rtt=0.01)
    run_round(limiter, clock, capacity=100, base_rtt=0.05)
    for _ in range(5):
        run_round(limiter, clock, capacity=100, base_rtt=0.01)
        assert limiter.limit == 32


def test_recovers_after_a_burst_of_errors() -> None:
    clock = Clock()
    limiter = ConcurrencyLimit(16, initial=16, clock=clock)
    run_round(limiter, clock, capacity=100, base_rtt=0.01)
    for _ in range(20):
        run_round(limiter, clock, capacity=0, base_rtt=0.01, queue=0)
    assert limiter.limit == 1
    for _ in range(40):
        run_round(limiter, clock, capacity=100, base_rtt=0.01)
    assert limiter.limit == 16


@pytest.mark.parametrize("maximum", [1, 3])
def test_bounds(maximum: int) -> None:
    clock = Clock()
    limiter = ConcurrencyLimit(maximum, initial=10, clock=clock)
    assert limiter.limit == maximum
    for _ in range(50):
        run_round(limiter, clock, capacity=100, base_rtt=0.01)
        assert 1 <= limiter.limit <= maximum
    for _ in range(50):
        run_round(limiter, clock, capacity=0, base_rtt=0.01, queue=0)
        assert 1 <= limiter.limit <= maximum
    assert limiter.limit == 1
