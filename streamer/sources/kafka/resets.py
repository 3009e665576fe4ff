"""A partition whose position is no longer in its log (OFFSET_OUT_OF_RANGE).

The consumer runs with `auto_offset_reset = "none"`, so aiokafka does not move
such a partition silently: the source asks the log's first and next offsets and
decides here where reading goes on -- `start_from` as for a new group -- and says
what that skips.  A committed offset below the first offset still in the log
means its records were deleted (retention, DeleteRecords) before they were read:
lost, a WARNING naming the offsets and a counter.  One past the log's end (the
topic deleted and created again, the log truncated) loses nothing known: a
WARNING says where reading goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError

log = logging.getLogger("streamer.source.kafka")

# what getmany raises for a partition with no valid position
POSITION_ERRORS = (NoOffsetForPartitionError, OffsetOutOfRangeError)


@dataclass(frozen=True)
class Reset:
    tp: TopicPartition
    position: int  # the offset that was to be read next
    earliest: int  # the first offset still in the log
    latest: int  # the next offset the log will take
    start_from: str  # "earliest" | "latest"

    @property
    def to(self) -> int:
        return self.earliest if self.start_from == "earliest" else self.latest

    @property
    def lost(self) -> tuple[int, int] | None:
        """[first, end) of the offsets skipped that were never read, if any."""
        if self.position >= self.to:
            return None
        return self.position, self.to

    def describe(self, source: str) -> str:
        where = f"kafka source {source}: {self.tp.topic} partition {self.tp.partition}"
        held = f"the log holds offsets {self.earliest} to {self.latest - 1}" \
            if self.latest > self.earliest else f"the log is empty at offset {self.latest}"
        lost = self.lost
        if lost is None:
            return (f"{where}: offset {self.position} is out of range ({held}; the topic "
                    f"was deleted and created again, or its log truncated?): reading goes on "
                    f"from offset {self.to} (start_from = {self.start_from})")
        first, end = lost
        deleted = min(end, self.earliest) - first
        why = (f"{deleted} of them deleted by retention before they were read"
               if deleted > 0 else "skipped")
        return (f"{where}: offset {self.position} is out of range ({held}): offsets "
                f"{first} to {end - 1} are lost ({why}; start_from = {self.start_from}): "
                f"reading goes on from offset {self.to}")


def report(source: str, reset: Reset, lost_counts: dict[TopicPartition, int]) -> None:
    """One WARNING per reset; the offsets lost are counted per partition."""
    lost = reset.lost
    if lost is not None:
        lost_counts[reset.tp] = lost_counts.get(reset.tp, 0) + lost[1] - lost[0]
    log.warning("%s", reset.describe(source))


async def reposition(consumer: AIOKafkaConsumer, exc: KafkaError, source: str,
                     start_from: str, lost_counts: dict[TopicPartition, int]) -> None:
    """Where the partitions of `exc` (NoOffsetForPartitionError: a new group's, none
    committed; OffsetOutOfRangeError: {partition: position}) are read from now."""
    assigned = consumer.assignment()
    if isinstance(exc, NoOffsetForPartitionError):
        tps = [tp for tp in exc.args[:1] if tp in assigned]
        if tps:  # as aiokafka's own reset would: nothing was read there yet
            await (consumer.seek_to_beginning if start_from == "earliest"
                   else consumer.seek_to_end)(*tps)
        return
    positions = {tp: offset for tp, offset in dict(exc.args[0] if exc.args else {}).items()
                 if tp in assigned}
    if not positions:
        return
    earliest = await consumer.beginning_offsets(list(positions))
    latest = await consumer.end_offsets(list(positions))
    for tp, position in positions.items():
        reset = Reset(tp, position, earliest[tp], latest[tp], start_from)
        report(source, reset, lost_counts)
        consumer.seek(tp, reset.to)
