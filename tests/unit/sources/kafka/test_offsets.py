"""PartitionOffsets: ordered commits per partition, pausing, revocation."""

from __future__ import annotations

from aiokafka import TopicPartition

from streamer.sources.kafka.offsets import PartitionOffsets

T0 = TopicPartition("t", 0)
T1 = TopicPartition("t", 1)


def make(limit: int = 3) -> tuple[PartitionOffsets, list[TopicPartition]]:
    resumed: list[TopicPartition] = []
    return PartitionOffsets(limit, resumed.append), resumed


def test_commits_only_the_acknowledged_prefix() -> None:
    book, _ = make()
    a = book.tracker(T0, 100, 200)(1)
    b = book.tracker(T0, 200, 300)(1)
    c = book.tracker(T0, 300, 400)(1)
    assert book.pending() == {}
    b.release()
    c.release()
    assert book.pending() == {}  # batch [100, 200) still in flight
    a.release()
    assert book.pending() == {T0: 400}
    book.mark_committed({T0: 400})
    assert book.pending() == {}
    assert book.partitions[T0].committed == 400


def test_every_sink_must_acknowledge() -> None:
    book, _ = make()
    ack = book.tracker(T0, 0, 10)(2)
    ack.release()
    assert book.pending() == {}
    ack.release()
    assert book.pending() == {T0: 10}


def test_batch_without_records_is_acknowledged_at_once() -> None:
    book, _ = make()
    book.tracker(T0, 0, 5)(0)
    assert book.pending() == {T0: 5}


def test_partitions_are_independent_and_can_be_selected() -> None:
    book, _ = make()
    book.tracker(T0, 0, 10)(1).release()
    slow = book.tracker(T1, 50, 60)(1)
    book.tracker(T1, 60, 70)(1).release()
    assert book.pending() == {T0: 10}
    assert book.pending([T1]) == {}
    slow.release()
    assert book.pending([T1]) == {T1: 70}
    assert book.pending([TopicPartition("t", 9)]) == {}


def test_pause_at_the_limit_and_resume_when_acks_return() -> None:
    book, resumed = make(limit=2)
    first = book.tracker(T0, 0, 10)(1)
    assert not book.should_pause(T0)
    second = book.tracker(T0, 10, 20)(1)
    assert book.should_pause(T0)
    assert not book.should_pause(T0)  # already paused
    second.release()  # out of order: the prefix does not move, still 2 in flight
    assert resumed == []
    first.release()
    assert resumed == [T0]
    assert not book.partitions[T0].paused


def test_revoked_partition_forgets_its_in_flight_batches() -> None:
    book, resumed = make(limit=1)
    done = book.tracker(T0, 0, 10)(1)
    done.release()
    late = book.tracker(T0, 10, 20)(1)
    assert book.should_pause(T0)
    assert book.pending([T0]) == {T0: 10}  # what a revocation commits
    book.drop([T0])
    late.release()  # acknowledged after the revocation: never committed
    assert book.pending() == {}
    assert resumed == []  # a dropped partition is not resumed
    # assigned again: a new committer starts at the consumer's new position
    again = book.tracker(T0, 10, 20)(1)
    assert book.pending() == {}
    again.release()
    assert book.pending() == {T0: 20}
    book.mark_committed({T0: 5})  # a stale commit result never moves it back
    assert book.partitions[T0].committed == 10
