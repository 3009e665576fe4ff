"""Stage store retries: until the operation passes, at one shared backoff gate, the
sink failing meanwhile; fatal and foreign errors are not retried."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from streamer.core.retry import Backoff
from streamer.observability.metrics import SinkStats
from streamer.sinks.stage.store.retry import FatalStageError, Retry
from tests.helpers.clock import FakeClock


def make_retry(clock: FakeClock, stats: SinkStats, **options) -> Retry:
    backoff = Backoff(0.5, 30.0, rng=random.Random(5), clock=clock, sleep=clock.sleep)
    return Retry(stats, "st", (OSError,), backoff=backoff, **options)


class Flaky:
    """Raises the given errors one per call, then returns "done"."""

    def __init__(self, stats: SinkStats, *errors: Exception) -> None:
        self.errors = list(errors)
        self.stats = stats
        self.failing_seen: list[bool] = []

    def __call__(self, suffix: str) -> str:
        self.failing_seen.append(self.stats.failing_since is not None)
        if self.errors:
            raise self.errors.pop(0)
        return f"done{suffix}"


async def test_an_operation_is_retried_until_it_passes(caplog) -> None:
    clock, stats = FakeClock(), SinkStats()
    op = Flaky(stats, OSError(28, "No space left on device"), ConnectionResetError("reset"))
    with caplog.at_level(logging.WARNING, logger="streamer.sink.stage"):
        assert await make_retry(clock, stats).run("close part-00001.csv", op, "!") == "done!"
    # full jitter under ceilings 0.5 and 1.0; the sink failed meanwhile, recovered after
    assert len(clock.sleeps) == 2
    assert 0 < clock.sleeps[0] <= 0.5 and 0 < clock.sleeps[1] <= 1.0
    assert op.failing_seen == [False, True, True]
    assert stats.retried == 2 and stats.failing_since is None
    assert stats.last_error == "close part-00001.csv: reset"
    assert [r.getMessage() for r in caplog.records] == [
        f"stage sink st: close part-00001.csv failed ({reason}); retrying in {delay:.1f}s"
        for reason, delay in zip(["[Errno 28] No space left on device", "reset"],
                                 clock.sleeps, strict=True)]


async def test_fatal_and_foreign_errors_are_not_retried() -> None:
    clock, stats = FakeClock(), SinkStats()
    retry = make_retry(clock, stats, fatal=lambda exc: "gone" in str(exc))
    with pytest.raises(FatalStageError,
                       match=r"^stage sink st: complete upload of k: upload gone$"):
        await retry.run("complete upload of k", Flaky(stats, OSError("upload gone")), "")
    with pytest.raises(ValueError, match="a bug"):
        await retry.run("write", Flaky(stats, ValueError("a bug")), "")
    assert clock.sleeps == [] and stats.retried == 0


class ManualClock(FakeClock):
    """Time that moves only when the test moves it (sleepers wake then)."""

    def __init__(self) -> None:
        super().__init__()
        self._moved = asyncio.Event()

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        await self._moved.wait()

    def advance(self, to: float) -> None:
        self.now = to
        self._moved.set()
        self._moved = asyncio.Event()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_one_failure_pauses_every_operation_of_the_store() -> None:
    clock, stats = ManualClock(), SinkStats()
    retry = make_retry(clock, stats)
    attempts: list[tuple[str, float]] = []
    errors = [OSError("refused")]

    async def put(name: str) -> str:
        attempts.append((name, clock.now))
        if errors:
            raise errors.pop()
        return name

    first = asyncio.create_task(retry.run("put a", put, "a"))
    await settle()
    assert attempts == [("a", 0.0)] and len(clock.sleeps) == 1  # "a" failed: gate closed
    second = asyncio.create_task(retry.run("put b", put, "b"))
    await settle()
    assert attempts == [("a", 0.0)] and len(clock.sleeps) == 2  # "b" waits at the gate
    pause = clock.sleeps[0]
    clock.advance(pause)
    assert await asyncio.gather(first, second) == ["a", "b"]
    assert sorted(attempts[1:]) == [("a", pause), ("b", pause)]
    assert clock.sleeps == [pause, pause]


async def test_an_attempt_that_hangs_times_out_and_is_retried() -> None:
    clock, stats = FakeClock(), SinkStats()
    retry = make_retry(clock, stats, timeout_s=0.05)
    calls = []

    async def upload() -> str:
        calls.append(len(calls))
        if len(calls) == 1:
            await asyncio.Event().wait()  # a peer that stops answering
        return "uploaded"

    assert await retry.run("upload part 1 of k", upload) == "uploaded"
    assert calls == [0, 1] and stats.retried == 1
    assert stats.last_error == "upload part 1 of k: "  # TimeoutError() has no text
