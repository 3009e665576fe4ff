"""`streamer_kafka_lag_messages` stays true while the sinks are stalled: the
partition is paused by backpressure and fetches nothing, yet the lag follows what
producers add (the end offsets are asked for without consuming).  Before
2026-12-05 it showed the high watermark of the last fetch: an operator saw a
steady lag while it grew."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.td import TDEmulator
from tests.helpers import (
    base_config,
    free_port,
    kafka_source,
    make_records,
    ndjson,
    scrape,
    stop,
    td_sink,
    wait_until,
    write_config,
)
from tests.helpers.process import Daemon

pytestmark = pytest.mark.timeout(120)

TOPIC = "events"


def _partition(port: int, name: str) -> float | None:
    return scrape(port).get((name, (("partition", "0"), ("source", "kafka"),
                                    ("topic", TOPIC))))


def test_the_lag_grows_while_the_sinks_are_stalled(kafka_broker: KafkaBroker, tmp_path: Path,
                                                     td_emulator: TDEmulator) -> None:
    records = make_records(600)
    kafka_broker.create_topic(TOPIC, 1)
    kafka_broker.produce(TOPIC, ndjson(records[:100]))
    td_emulator.set_faults(force_status=503)  # every request retried: the sink stalls
    api = free_port()
    text = (base_config(tmp_path, api=f"127.0.0.1:{api}")
            + kafka_source(kafka_broker, "glag", "max_in_flight_batches = 1")
            + td_sink(td_emulator.url, api="ingest",
                      extra="batch = { max_records = 10, linger_ms = 10 }\n"
                            "buffer = { max_batches = 1 }"))
    daemon = Daemon(write_config(tmp_path, text), tmp_path / "daemon.log",
                    env={"TD_WRITE_KEY": td_emulator.key})
    try:
        wait_until(lambda: _partition(api, "streamer_kafka_paused") == 1, timeout=60,
                   what="the partition paused by backpressure")
        wait_until(lambda: _partition(api, "streamer_kafka_lag_messages") == 100, timeout=30,
                   what="the lag of the first 100 messages")
        # twice: a fetch sent before the pause may still answer once, with the first
        for start, end in ((100, 300), (300, 600)):
            kafka_broker.produce(TOPIC, ndjson(records[start:end - 1]))
            # alone: tansu lists the end offset of a partition as its last batch's first
            # offset + 1 (Kafka: the offset after the last message)
            kafka_broker.produce(TOPIC, ndjson(records[end - 1:end]))
            wait_until(lambda end=end: _partition(api, "streamer_kafka_lag_messages") == end,
                       timeout=30, what=f"the lag of the {end} messages produced, while paused")
        assert _partition(api, "streamer_kafka_paused") == 1  # still stalled meanwhile
        td_emulator.set_faults()
        wait_until(lambda: _partition(api, "streamer_kafka_lag_messages") == 0, timeout=60,
                   what="everything delivered and committed")
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert summary["sinks"]["td"]["delivered"] == 600
    stored = sorted(r["record"]["id"] for r in td_emulator.records())
    assert sorted(set(stored)) == [r["id"] for r in records]
