"""Which sink a one-shot run gives up on, and its ERROR line (runtime/give_up.py); the
runs themselves: tests/integration/test_oneshot_give_up.py."""

from __future__ import annotations

import asyncio
import time

from streamer.observability.metrics import Metrics, SinkStats
from streamer.runtime.give_up import GaveUp, _gave_up, report, watch

WHERE = {"td": "https://in.example.com"}


def failing(for_s: float, error: str = "POST /db/t: timeout") -> SinkStats:
    stats = SinkStats()
    stats.failed(error)
    stats.failing_since = time.monotonic() - for_s
    return stats


def test_a_run_of_failures_gives_up_at_the_bound_and_any_success_starts_it_again() -> None:
    now = time.monotonic()
    assert _gave_up("td", failing(9), now, 10, WHERE) is None
    gave_up = _gave_up("td", failing(11), now, 10, WHERE)
    assert gave_up is not None and not gave_up.hopeless
    assert (gave_up.destination, gave_up.error) == (WHERE["td"], "POST /db/t: timeout")
    stats = failing(11)
    stats.recovered()
    assert _gave_up("td", stats, now, 10, WHERE) is None
    assert _gave_up("td", failing(1000), now, 0, WHERE) is None  # 0: never on time


def test_a_hopeless_failure_gives_up_at_once_and_a_success_clears_it() -> None:
    stats = failing(0.0)
    stats.hopeless = "POST /db/t: SSLCertVerificationError: certificate verify failed"
    gave_up = _gave_up("td", stats, time.monotonic(), 0, WHERE)
    assert gave_up is not None and gave_up.hopeless and "verify failed" in gave_up.error
    stats.recovered()
    assert stats.hopeless is None and _gave_up("td", stats, time.monotonic(), 0, WHERE) is None


async def test_watch_returns_the_sink_that_failed_too_long() -> None:
    metrics = Metrics(exposed=False)
    metrics.sink("ok").delivered = 5
    metrics.sinks["td"] = failing(0.0)
    gave_up = await asyncio.wait_for(watch(metrics, WHERE, 0.2), 5)
    assert gave_up.sink == "td" and gave_up.failing_for >= 0.2


def test_the_line_says_what_was_and_was_not_delivered() -> None:
    stats = SinkStats(received=50, delivered=20, dead_lettered=3)
    line = report(GaveUp("td", WHERE["td"], 300.4, "POST /db/t: timeout", False), stats, 300)
    assert line == ("sink td (https://in.example.com): no success for 300.4s of retries "
                    "(oneshot_give_up_s = 300); last error: POST /db/t: timeout; stopping "
                    "the one-shot run: delivered 20 of 50 record(s) (dead-lettered 3); the 27 "
                    "not delivered are not checkpointed: a file source reads them again at "
                    "the next run (stdin input is not read again)")
