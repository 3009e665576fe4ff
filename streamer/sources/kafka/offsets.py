"""Per-partition offset bookkeeping of the Kafka source (pure: no I/O).

Each assigned partition gets an `OrderedCommitter` when its first batch arrives
(starting at that batch's first offset, which is the consumer's position).  The
offset to commit is the end of the longest acknowledged prefix of batches
(last offset + 1).  A partition with `max_in_flight` unacknowledged batches is
paused; it resumes once acknowledgements bring it below the limit.  Revoking a
partition drops its state: acknowledgements of its in-flight batches still
arrive but reach an orphaned committer, so they are never committed (the next
owner reads those batches again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiokafka import TopicPartition

from streamer.core.ack import Ack, OrderedCommitter


@dataclass(slots=True)
class PartitionState:
    tp: TopicPartition
    committer: OrderedCommitter
    committed: int  # last offset committed to the broker (or the start position)
    paused: bool = False

    @property
    def in_flight(self) -> int:
        return self.committer.in_flight


class PartitionOffsets:
    def __init__(self, max_in_flight: int,
                 on_resume: Callable[[TopicPartition], None]) -> None:
        self.max_in_flight = max_in_flight
        self._on_resume = on_resume
        self.partitions: dict[TopicPartition, PartitionState] = {}

    def tracker(self, tp: TopicPartition, first: int, end: int) -> Callable[[int], Ack]:
        """`track(sinks)` for a batch of `tp` covering offsets [first, end)."""
        state = self.partitions.get(tp)
        if state is None:
            committer = OrderedCommitter(first, lambda _offset: self._advanced(state))
            state = self.partitions[tp] = PartitionState(tp, committer, first)
        committer = state.committer
        return lambda sinks: committer.track(end, sinks)

    def should_pause(self, tp: TopicPartition) -> bool:
        """After a batch was emitted: True when `tp` must be paused now."""
        state = self.partitions.get(tp)
        if state is None or state.paused or state.in_flight < self.max_in_flight:
            return False
        state.paused = True
        return True

    def _advanced(self, state: PartitionState) -> None:
        if (state.paused and state.in_flight < self.max_in_flight
                and self.partitions.get(state.tp) is state):
            state.paused = False
            self._on_resume(state.tp)

    def pending(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Acknowledged offsets not committed yet: {tp: next offset to read}."""
        states = (self.partitions.values() if tps is None
                  else (s for tp in tps if (s := self.partitions.get(tp)) is not None))
        return {s.tp: s.committer.committed for s in states
                if s.committer.committed > s.committed}

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            state = self.partitions.get(tp)
            if state is not None and offset > state.committed:
                state.committed = offset

    def drop(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self.partitions.pop(tp, None)
