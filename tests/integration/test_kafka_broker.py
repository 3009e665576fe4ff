"""The tansu broker fixture against aiokafka: groups, manual commits, restarts."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from tests.fixtures.kafka import COMMIT_TIMEOUT_S, CONSUMER_TIMING, KafkaBroker

pytestmark = pytest.mark.timeout(60)

TOPIC = "events"
PARTITIONS = 4


def make_consumer(broker: KafkaBroker, group: str | None, **kwargs: object) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **CONSUMER_TIMING,
        **kwargs,  # type: ignore[arg-type]
    )


async def commit(consumer: AIOKafkaConsumer, offsets: dict | None = None) -> None:  # type: ignore[type-arg]
    await asyncio.wait_for(consumer.commit(offsets), COMMIT_TIMEOUT_S)


async def drain(
    consumer: AIOKafkaConsumer, count: int, timeout: float = 15.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read exactly ``count`` records (fails on timeout or on extra records in the last batch)."""
    records: list[ConsumerRecord[bytes, bytes]] = []

    async def loop() -> None:
        while len(records) < count:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for msgs in batch.values():
                records.extend(msgs)

    await asyncio.wait_for(loop(), timeout)
    assert len(records) == count
    return records


def by_partition(records: list[ConsumerRecord[bytes, bytes]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for r in records:
        out[r.partition].append(r.offset)
    return out


async def test_produce_consume_commit_resume(
    kafka_broker: KafkaBroker, record_property: pytest.RecordProperty
) -> None:
    n = 20_000
    values = [b'{"i": %d}' % i for i in range(n)]
    await kafka_broker.acreate_topic(TOPIC, PARTITIONS)
    stats = await kafka_broker.aproduce(TOPIC, values)
    record_property("produce_rate_msg_s", round(stats.rate))
    print(f"produced {n} messages at {stats.rate:,.0f} msg/s")

    first = make_consumer(kafka_broker, "g1")
    await first.start()
    try:
        first.subscribe([TOPIC])
        records = await drain(first, n)
        assert sorted(r.value for r in records) == sorted(values)
        offsets = by_partition(records)
        assert sorted(offsets) == list(range(PARTITIONS))
        for p, offs in offsets.items():
            assert offs == list(range(len(offs))), f"partition {p} out of order"
        # round-robin production: value i went to partition i % 4 at offset i // 4
        assert all(r.value == values[r.offset * PARTITIONS + r.partition] for r in records)

        # Commit specific offsets: everything below `mid` on each partition.
        mid = {TopicPartition(TOPIC, p): len(offs) // 3 + p for p, offs in offsets.items()}
        await commit(first, {tp: OffsetAndMetadata(off, "first") for tp, off in mid.items()})
        for tp, off in mid.items():
            assert await first.committed(tp) == off
    finally:
        await first.stop()

    second = make_consumer(kafka_broker, "g1")
    await second.start()
    try:
        second.subscribe([TOPIC])
        rest = await drain(second, n - sum(mid.values()))
        for p, offs in by_partition(rest).items():
            tp = TopicPartition(TOPIC, p)
            assert offs == list(range(mid[tp], mid[tp] + len(offs)))
        # plain {tp: offset} form (positions: tansu's end_offsets() is unreliable)
        ends = {tp: await second.position(tp) for tp in mid}
        assert sum(ends.values()) == n
        await commit(second, ends)
        for tp, off in ends.items():
            assert await second.committed(tp) == off
    finally:
        await second.stop()

    # nothing left for the group; everything still there without one
    assert await kafka_broker.aconsume_all(TOPIC, "g1") == []
    assert len(await kafka_broker.aconsume_all(TOPIC)) == n


async def test_two_members_split_partitions_and_fail_over(kafka_broker: KafkaBroker) -> None:
    await kafka_broker.acreate_topic(TOPIC, PARTITIONS)
    a = make_consumer(kafka_broker, "g2", client_id="a")
    b = make_consumer(kafka_broker, "g2", client_id="b")
    await a.start()
    await b.start()
    try:
        a.subscribe([TOPIC])
        b.subscribe([TOPIC])
        got: dict[str, list[ConsumerRecord[bytes, bytes]]] = {"a": [], "b": []}

        async def poll(name: str, consumer: AIOKafkaConsumer) -> None:
            batch = await consumer.getmany(timeout_ms=100)
            for msgs in batch.values():
                got[name].extend(msgs)

        async def until(cond: object, timeout: float = 15.0) -> None:
            async def loop() -> None:
                while not cond():  # type: ignore[operator]
                    await asyncio.gather(poll("a", a), poll("b", b))

            await asyncio.wait_for(loop(), timeout)

        await until(lambda: a.assignment() and b.assignment())
        assert a.assignment().isdisjoint(b.assignment())
        assert {tp.partition for tp in a.assignment() | b.assignment()} == set(range(PARTITIONS))

        n = 2_000
        await kafka_broker.aproduce(TOPIC, [b"%d" % i for i in range(n)])
        await until(lambda: len(got["a"]) + len(got["b"]) >= n)
        assert len(got["a"]) + len(got["b"]) == n
        assert {r.partition for r in got["a"]} == {tp.partition for tp in a.assignment()}
        assert {r.partition for r in got["b"]} == {tp.partition for tp in b.assignment()}
        await commit(a)
        await commit(b)
    finally:
        await b.stop()  # leaves the group: a takes over every partition

    try:
        # Produce only once the survivor owns everything, so that no record is
        # fetched before the rebalance and fetched again after it.
        loop = asyncio.get_running_loop()
        started = loop.time()
        while len(a.assignment()) < PARTITIONS:
            assert not await a.getmany(timeout_ms=100)
            assert loop.time() - started < 10, "no failover to the survivor"
        print(f"failover took {loop.time() - started:.2f} s")
        await kafka_broker.aproduce(TOPIC, [b"late-%d" % i for i in range(400)])
        late: list[ConsumerRecord[bytes, bytes]] = []

        async def survivor() -> None:
            while len(late) < 400:
                batch = await a.getmany(timeout_ms=100)
                for msgs in batch.values():
                    late.extend(msgs)

        await asyncio.wait_for(survivor(), 15)
        assert sorted(r.value for r in late) == sorted(b"late-%d" % i for i in range(400))
    finally:
        await a.stop()


async def test_restart_with_s3_storage_keeps_data_and_offsets(
    kafka_broker_persistent: KafkaBroker,
) -> None:
    broker = kafka_broker_persistent
    n = 4_000
    values = [b"v%d" % i for i in range(n)]
    await broker.acreate_topic(TOPIC, PARTITIONS)
    await broker.aproduce(TOPIC, values)

    consumer = make_consumer(broker, "g3")
    await consumer.start()
    try:
        consumer.subscribe([TOPIC])
        records = await drain(consumer, n)
        half = {
            TopicPartition(TOPIC, p): len(offs) // 2 for p, offs in by_partition(records).items()
        }
        await commit(consumer, {tp: OffsetAndMetadata(off, "") for tp, off in half.items()})
    finally:
        await consumer.stop()

    old_pid = broker.pid
    broker.kill()
    assert not broker.running
    broker.restart()
    assert broker.running and broker.pid != old_pid

    extra = [b"after-restart-%d" % i for i in range(400)]
    await broker.aproduce(TOPIC, extra)

    resumed = make_consumer(broker, "g3")
    await resumed.start()
    try:
        for tp, off in half.items():
            assert await resumed.committed(tp) == off
        resumed.subscribe([TOPIC])
        rest = await drain(resumed, n - sum(half.values()) + len(extra))
        for p, offs in by_partition(rest).items():
            start = half[TopicPartition(TOPIC, p)]
            assert offs == list(range(start, start + len(offs)))
        expected = {
            v
            for v in values
            if int(v[1:]) // PARTITIONS >= half[TopicPartition(TOPIC, int(v[1:]) % PARTITIONS)]
        }
        assert {r.value for r in rest} == expected | set(extra)
        await commit(resumed)
    finally:
        await resumed.stop()

    everything = await broker.aconsume_all(TOPIC)
    assert sorted(r.value for r in everything) == sorted(values + extra)


def test_sync_helpers(kafka_broker: KafkaBroker) -> None:
    kafka_broker.create_topic("keyed", 3)
    values = [b"k%d:%d" % (i % 5, i) for i in range(300)]
    kafka_broker.produce("keyed", values, key_fn=lambda v: v.split(b":")[0])
    records = kafka_broker.consume_all("keyed", group="g4")
    assert sorted(r.value for r in records) == sorted(values)
    partition_of: dict[bytes, int] = {}
    for r in records:
        assert r.key == r.value.split(b":")[0]
        assert partition_of.setdefault(r.key, r.partition) == r.partition
    # per-key order preserved
    for key in partition_of:
        seq = [r.value for r in records if r.key == key]
        assert seq == [v for v in values if v.startswith(key + b":")]
    assert kafka_broker.consume_all("keyed", group="g4") == []
