"""Kafka record batches in every compression codec a producer may use (gzip, snappy,
lz4, zstd, none), read by the daemon: producers choose the codec, not streamer, so a
codec streamer cannot decompress stops the whole partition (before 2026-12-04:
lz4, snappy and zstd batches were never read, `fetch failed: UnsupportedCodecError`
for ever and nothing staged, not even the batches before them in the fetch)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tests.fixtures.kafka import KafkaBroker
from tests.helpers import base_config, kafka_source, make_records, ndjson, stage_sink, write_config
from tests.helpers.staging import run_until_staged

pytestmark = pytest.mark.timeout(120)

CODECS = ("gzip", "snappy", "lz4", "zstd", None)
PER_CODEC = 300


async def produce_compressed(broker: KafkaBroker, topic: str,
                             values_by_codec: dict[str | None, list[bytes]]) -> None:
    """One producer per codec, in order: each codec's values in batches of its own."""
    for codec, values in values_by_codec.items():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap,
                                    compression_type=codec, linger_ms=5)
        await producer.start()
        try:
            sent = [await producer.send(topic, value, partition=0) for value in values]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()


def test_batches_in_every_codec_are_read(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    records = make_records(PER_CODEC * len(CODECS))
    values = ndjson(records)
    by_codec = {codec: values[i * PER_CODEC:(i + 1) * PER_CODEC]
                for i, codec in enumerate(CODECS)}
    kafka_broker.create_topic("events", 1)
    asyncio.run(produce_compressed(kafka_broker, "events", by_codec))
    text = (base_config(tmp_path) + kafka_source(kafka_broker, "codecs")
            + stage_sink(tmp_path))
    run = run_until_staged(write_config(tmp_path, text), tmp_path / "daemon.log",
                           tmp_path / "stage", records, timeout=30)
    summary, daemon = run.summary, run.daemon
    assert summary["sources"]["kafka"] == {"records": len(records),
                                           "bytes": sum(map(len, values)), "rejected": 0}
    assert "fetch failed" not in daemon.log
    # everything is committed: the group has nothing left to read
    assert kafka_broker.consume_all("events", "codecs", commit=False) == []
