"""A partition out of range (its offsets deleted by retention) is said aloud: a
WARNING naming topic, partition and the offsets lost, and a counter; where reading
goes on follows start_from.  The test broker (tansu) answers a fetch past its log
with no records instead of OFFSET_OUT_OF_RANGE, and has no retention or
DeleteRecords, so this is tested here with aiokafka's own error types and a stand-in
for the consumer's offset calls (the broker round trips)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import NoOffsetForPartitionError, OffsetOutOfRangeError

from streamer.sources.kafka.resets import POSITION_ERRORS, Reset, reposition

TP = TopicPartition("events", 3)
OTHER = TopicPartition("events", 4)


class Consumer:
    """The offset calls `reposition` makes, answered from a log of `earliest`..`latest`."""

    def __init__(self, earliest: int, latest: int, assigned=(TP,)) -> None:
        self.earliest, self.latest = earliest, latest
        self.assigned = set(assigned)
        self.seeks: list[tuple[TopicPartition, int | str]] = []

    def assignment(self):
        return self.assigned

    async def beginning_offsets(self, tps):
        return {tp: self.earliest for tp in tps}

    async def end_offsets(self, tps):
        return {tp: self.latest for tp in tps}

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))

    async def seek_to_beginning(self, *tps):
        self.seeks.extend((tp, "beginning") for tp in tps)

    async def seek_to_end(self, *tps):
        self.seeks.extend((tp, "end") for tp in tps)


def run(consumer: Consumer, exc: Exception, start_from: str = "earliest") -> dict:
    lost: dict[TopicPartition, int] = {}
    asyncio.run(reposition(consumer, exc, "k", start_from, lost))
    return lost


def test_the_errors_getmany_raises_are_the_ones_handled() -> None:
    assert isinstance(OffsetOutOfRangeError({TP: 5}), POSITION_ERRORS)
    assert isinstance(NoOffsetForPartitionError(TP), POSITION_ERRORS)


def test_offsets_deleted_by_retention_are_a_warning_and_counted(caplog) -> None:
    consumer = Consumer(earliest=1500, latest=2000)
    with caplog.at_level(logging.WARNING, "streamer.source.kafka"):
        lost = run(consumer, OffsetOutOfRangeError({TP: 1200}))
    assert consumer.seeks == [(TP, 1500)]
    assert lost == {TP: 300}
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert caplog.records[0].getMessage() == (
        "kafka source k: events partition 3: offset 1200 is out of range (the log holds "
        "offsets 1500 to 1999): offsets 1200 to 1499 are lost (300 of them deleted by "
        "retention before they were read; start_from = earliest): reading goes on from "
        "offset 1500")
    lost_again = {TP: 300}  # a second reset adds to the count
    asyncio.run(reposition(Consumer(1600, 2100), OffsetOutOfRangeError({TP: 1550}), "k",
                           "earliest", lost_again))
    assert lost_again == {TP: 350}


def test_start_from_latest_skips_to_the_end_and_counts_all_it_skips(caplog) -> None:
    consumer = Consumer(earliest=1500, latest=2000)
    with caplog.at_level(logging.WARNING, "streamer.source.kafka"):
        lost = run(consumer, OffsetOutOfRangeError({TP: 1200}), "latest")
    assert consumer.seeks == [(TP, 2000)] and lost == {TP: 800}
    assert "offsets 1200 to 1999 are lost (300 of them deleted by retention" \
        in caplog.records[0].getMessage()


def test_a_position_past_the_end_loses_nothing_known(caplog) -> None:
    consumer = Consumer(earliest=0, latest=40)  # the topic created again
    with caplog.at_level(logging.WARNING, "streamer.source.kafka"):
        lost = run(consumer, OffsetOutOfRangeError({TP: 1000}))
    assert consumer.seeks == [(TP, 0)] and lost == {}
    assert caplog.records[0].getMessage() == (
        "kafka source k: events partition 3: offset 1000 is out of range (the log holds "
        "offsets 0 to 39; the topic was deleted and created again, or its log truncated?): "
        "reading goes on from offset 0 (start_from = earliest)")


def test_partitions_no_longer_assigned_are_left_alone() -> None:
    consumer = Consumer(earliest=10, latest=20, assigned=(OTHER,))
    assert run(consumer, OffsetOutOfRangeError({TP: 5})) == {}
    assert consumer.seeks == []


@pytest.mark.parametrize(("start_from", "where"), [("earliest", "beginning"),
                                                   ("latest", "end")])
def test_a_new_group_starts_where_start_from_says_without_a_warning(
        caplog, start_from: str, where: str) -> None:
    consumer = Consumer(earliest=10, latest=20)
    with caplog.at_level(logging.INFO, "streamer.source.kafka"):
        lost = run(consumer, NoOffsetForPartitionError(TP), start_from)
    assert consumer.seeks == [(TP, where)] and lost == {} and not caplog.records


def test_an_empty_log_is_said_as_such() -> None:
    text = Reset(TP, 7, 9, 9, "earliest").describe("k")
    assert "(the log is empty at offset 9)" in text and "offsets 7 to 8 are lost" in text
