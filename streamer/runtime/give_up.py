"""A one-shot run gives up on a sink that cannot make progress.

A daemon retries a failing destination for ever: an outage ends, and /health says
so meanwhile.  A one-shot load run from a script or cron has no one watching it: a
TD host that does not resolve, an S3 or AWS endpoint that does not answer, a stage
directory that is full would keep it retrying until it is killed.  So a finite run
watches every sink's run of failures (`SinkStats.failing_since`, reset by any
success): once one has lasted `oneshot_give_up_s`, or at once for a failure that no
retry mends (`SinkStats.hopeless`: a certificate that does not verify), the run
stops as a forced stop does -- nothing undelivered is acknowledged, so no checkpoint
passes it and the next run sends it -- and exits 1 with one ERROR line (`report`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from streamer.config.root import Config
from streamer.observability.metrics import Metrics, SinkStats

CHECK_EVERY_S = 1.0  # at most; a bound below 4 s is checked 4 times per bound


@dataclass(frozen=True)
class GaveUp:
    sink: str
    destination: str
    failing_for: float
    error: str
    hopeless: bool


def destinations(cfg: Config) -> dict[str, str]:
    """Where each sink writes, for the ERROR line: a stage's url, TD's endpoint (a
    config error if it held a password, so nothing secret)."""
    out = {}
    for name, sink in cfg.sinks.items():
        out[name] = sink.url if sink.type == "stage" else sink.base_url
    return out


def _gave_up(name: str, stats: SinkStats, now: float, bound_s: float,
             where: Mapping[str, str]) -> GaveUp | None:
    since = stats.failing_since
    if since is None:
        return None
    if stats.hopeless is not None:
        return GaveUp(name, where.get(name, "?"), now - since, stats.hopeless, True)
    if bound_s and now - since >= bound_s:
        return GaveUp(name, where.get(name, "?"), now - since, stats.last_error or "?", False)
    return None


async def watch(metrics: Metrics, where: Mapping[str, str], bound_s: float) -> GaveUp:
    """Return the first sink to give up on (`bound_s` 0: only a hopeless failure)."""
    period = min(CHECK_EVERY_S, bound_s / 4) if bound_s else CHECK_EVERY_S
    while True:
        await asyncio.sleep(period)
        now = time.monotonic()
        for name, stats in list(metrics.sinks.items()):
            gave_up = _gave_up(name, stats, now, bound_s, where)
            if gave_up is not None:
                return gave_up


def report(gave_up: GaveUp, stats: SinkStats, bound_s: float) -> str:
    """The one ERROR line of a run that gave up (after its stop: final counts)."""
    why = ("a failure no retry mends" if gave_up.hopeless else
           f"no success for {gave_up.failing_for:.1f}s of retries (oneshot_give_up_s = "
           f"{bound_s:g})")
    line = (f"sink {gave_up.sink} ({gave_up.destination}): {why}; last error: "
            f"{gave_up.error}; stopping the one-shot run: delivered {stats.delivered} of "
            f"{stats.received} record(s) (dead-lettered {stats.dead_lettered}); the "
            f"{stats.in_flight} not delivered are not checkpointed: a file source reads "
            "them again at the next run (stdin input is not read again)")
    if stats.unloaded_windows:
        line += (f"; {len(stats.unloaded_windows)} closed load window(s) not loaded stay in "
                 "the journal: the next start loads them")
    return line
