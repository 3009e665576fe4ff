"""What the TD sink's workers take: the units (requests) of a batch, and the
requests waiting for their retry (and how long they wait)."""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Sequence
from typing import Any

from streamer.core.batch import Batch
from streamer.core.concurrency import ConcurrencyLimit
from streamer.core.retry import Backoff
from streamer.sinks.td.requests import FlatBatch, Target

# this many failed answers in a row (or as many as the limit, if more): the
# destination is down, not partly failing, and a request's retries back off
DOWN_STREAK = 8
PARTIAL_RETRY_RTTS = 4.0  # a partial failure is retried within this many round trips

Unit = tuple[Target, bytes, Any, int]  # target, body, record index(es), record count


class BatchDelivery:
    """One batch in the sink: its units, and what became of its records."""

    __slots__ = ("batch", "dead", "flat", "groups", "pos", "remaining", "taken_at", "units")

    def __init__(self, batch: Batch, flat: FlatBatch) -> None:
        self.batch = batch
        self.flat = flat
        self.taken_at = time.monotonic()
        self.remaining = batch.count
        self.dead: list[dict[str, Any]] = []
        # postback: (target, record indices) groups walked record by record;
        # ingest: prebuilt (target, body, indices, count) units
        self.groups: list[tuple[Target, Sequence[int]]] = []
        self.units: list[Unit] = []
        self.pos = [0, 0]  # [group or unit index, position in the group]

    def next_unit(self) -> Unit | None:
        pos = self.pos
        if self.units:
            if pos[0] < len(self.units):
                pos[0] += 1
                return self.units[pos[0] - 1]
            return None
        groups = self.groups
        while pos[0] < len(groups):
            target, indices = groups[pos[0]]
            if pos[1] < len(indices):
                index = indices[pos[1]]
                pos[1] += 1
                return target, self.flat.raws[index], index, 1
            pos[0] += 1
            pos[1] = 0
        return None


class RetryQueue:
    """Requests waiting for their retry, by due time (a heap)."""

    def __init__(self) -> None:
        # (due, seq, job, unit, attempts so far, first attempt's time)
        self._heap: list[tuple[float, int, BatchDelivery, Unit, int, float]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, delay: float, job: BatchDelivery, unit: Unit, attempts: int,
             started: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), job, unit,
                                    attempts, started))

    def pop_due(self) -> tuple[BatchDelivery, Unit, int, float] | None:
        heap = self._heap
        if heap and heap[0][0] <= time.monotonic():
            _, _, job, unit, attempts, started = heapq.heappop(heap)
            return job, unit, attempts, started
        return None

    def wait_s(self) -> float:
        """Seconds until the next retry is due (0 if one is)."""
        return max(0.0, self._heap[0][0] - time.monotonic()) if self._heap else 0.0


class RetryDelays:
    """How long a failed request waits before its retry.

    While other requests succeed, the failures are partial (one bad backend of
    several, random errors): a request is retried after a few round trips,
    doubling with each failed attempt, never later than `initial_s` of the
    backoff (with 30% of requests failing at random, 1 in 5,000 fails 8 times:
    growing to `max_s` would leave the run's last records waiting for seconds).
    Once the whole destination fails (DOWN_STREAK failed answers in a row),
    from `initial_s` on, up to `max_s`.
    """

    def __init__(self, backoff: Backoff, limit: ConcurrencyLimit,
                 rng: random.Random | None = None) -> None:
        self._backoff = backoff
        self._limit = limit
        self._rng = rng or random.Random()
        self._streak = 0  # failed answers since the last good (or final) one

    def answered(self) -> None:
        self._streak = 0

    def failed(self, attempts: int) -> float:
        """The delay before the retry of a request that failed `attempts` times."""
        backoff, limit = self._backoff, self._limit
        self._streak += 1
        growth = 2.0 ** min(attempts - 1, 60)
        if self._streak < max(DOWN_STREAK, limit.limit):  # partial
            rtts = PARTIAL_RETRY_RTTS * (limit.baseline_rtt or backoff.initial_s)
            return self._rng.uniform(0.0, min(backoff.initial_s, rtts * growth))
        return self._rng.uniform(0.0, min(backoff.max_s, backoff.initial_s * growth))
