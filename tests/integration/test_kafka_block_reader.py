"""The Kafka source's block reader (sources/kafka/fetch.py) in a real aiokafka consumer
against the tansu broker: what `getmany` returns through it equals what the
per-message reader returns, from the start and from inside a producer batch."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streamer.sources.kafka.fetch import FetchedBlock, blocks_of, install_block_reader
from tests.fixtures.kafka import KafkaBroker

pytestmark = pytest.mark.timeout(60)

TOPIC = "blocks"


async def read_all(broker: KafkaBroker, position: int, count: int, *, blocks: bool,
                   limit: int = 100_000, isolation_level: str = "read_uncommitted",
                   topic: str = TOPIC) -> tuple[list[tuple[int, bytes]], int]:
    """(offset, value) of partition 0 from `position` until `count` messages, and how
    many items `getmany` returned for it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=64 << 10,
                                isolation_level=isolation_level)
    await consumer.start()
    try:
        if blocks:
            assert install_block_reader(consumer, limit)
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, position)
        out: list[tuple[int, bytes]] = []
        items = 0
        while len(out) < count:
            fetched = await consumer.getmany(timeout_ms=500)
            for messages in fetched.values():
                items += len(messages)
                if blocks:
                    assert all(type(m) is FetchedBlock for m in messages)
                for block in blocks_of(messages):
                    out += [(block.offset_of(i), v) for i, v in enumerate(block.values)]
        assert await consumer.position(tp) == position + count
        return out, items
    finally:
        await consumer.stop()


@pytest.mark.parametrize("isolation_level", ["read_uncommitted", "read_committed"])
async def test_getmany_through_the_block_reader_equals_the_per_message_reader(
        kafka_broker: KafkaBroker, isolation_level: str) -> None:
    """read_committed too: a fetch that names no aborted transaction (every fetch of a
    topic without transactions: tansu takes the fetch's isolation level) is read as
    blocks; one that names some is left to aiokafka (tests/unit/sources/kafka)."""
    topic = f"{TOPIC}-{isolation_level}"
    await kafka_broker.acreate_topic(topic, 1)
    values = [b'{"n": %d, "pad": "%s"}' % (i, b"x" * (i % 300)) for i in range(3000)]
    await kafka_broker.aproduce(topic, values)
    for position in (0, 1234):  # 1234: inside a producer batch
        expected = list(enumerate(values))[position:]
        plain, _ = await read_all(kafka_broker, position, len(expected), blocks=False,
                                  isolation_level=isolation_level, topic=topic)
        fast, items = await read_all(kafka_broker, position, len(expected), blocks=True,
                                     isolation_level=isolation_level, topic=topic)
        assert plain == fast == expected
        assert items < len(expected) / 50  # blocks of whole fetches, not messages
    # a limit cuts fetches: blocks of at most 100 messages, nothing lost or repeated
    fast, items = await read_all(kafka_broker, 7, len(values) - 7, blocks=True, limit=100,
                                 isolation_level=isolation_level, topic=topic)
    assert fast == list(enumerate(values))[7:]
    assert items >= (len(values) - 7) / 100

