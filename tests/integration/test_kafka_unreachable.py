"""A Kafka source whose brokers cannot be reached (down at start, a wrong
`bootstrap_servers`) reads nothing: /health must say so instead of "ok", and turn
ok by itself once a broker answers and the records flow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.kafka import KafkaBroker
from tests.helpers import (
    Daemon,
    assert_stage_covers,
    assert_stage_equals,
    base_config,
    count_stage_rows,
    free_port,
    health,
    kafka_source,
    make_records,
    ndjson,
    stage_ids,
    stage_sink,
    stop,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(90)


def _health(port: int) -> dict | None:
    try:
        return health(port)[1]
    except OSError:
        return None


def test_unreachable_broker_degrades_health_until_it_answers(tmp_path: Path) -> None:
    broker = KafkaBroker(log_dir=tmp_path)  # not started yet: nothing listens there
    api = free_port()
    text = (base_config(tmp_path, api=f"127.0.0.1:{api}")
            + kafka_source(broker, "g-down") + stage_sink(tmp_path))
    daemon = Daemon(write_config(tmp_path, text), tmp_path / "daemon.log")
    records = make_records(500)
    try:
        wait_until(lambda: (_health(api) or {}).get("status") == "degraded", timeout=30,
                   what="/health degraded while no broker answers")
        body = _health(api)
        assert body is not None
        source = body["sources"]["kafka"]
        assert source["state"] == "unreachable"
        assert broker.bootstrap in source["last_error"]
        assert body["sinks"]["stage"]["state"] == "ok"

        with broker:
            broker.create_topic("events", 2)
            broker.produce("events", ndjson(records))
            wait_until(lambda: count_stage_rows(tmp_path / "stage") >= len(records),
                       timeout=60, what="every record staged once the broker answers")
            body = _health(api)
            assert body is not None
            assert body["status"] == "ok"
            assert body["sources"]["kafka"] == {"state": "running"}
            summary = stop(daemon)
    finally:
        daemon.stop()
    assert_stage_equals(tmp_path / "stage", records)
    assert summary["sinks"]["stage"]["delivered"] == len(records)


def test_a_broker_lost_after_start_degrades_health_until_it_is_back(
        tmp_path: Path, kafka_broker_persistent: KafkaBroker) -> None:
    broker = kafka_broker_persistent  # its data and offsets survive kill -9 (moto S3)
    records = make_records(600, seed=5)
    broker.create_topic("events", 2)
    broker.produce("events", ndjson(records[:300]))
    api = free_port()
    text = (base_config(tmp_path, api=f"127.0.0.1:{api}")
            + kafka_source(broker, "g-lost") + stage_sink(tmp_path))
    daemon = Daemon(write_config(tmp_path, text), tmp_path / "daemon.log")
    stage = tmp_path / "stage"
    try:
        wait_until(lambda: count_stage_rows(stage) >= 300, timeout=60, what="the first rows")
        assert (_health(api) or {}).get("status") == "ok"
        broker.kill()
        wait_until(lambda: (_health(api) or {}).get("sources", {}).get("kafka", {})
                   .get("state") == "unreachable", timeout=30,
                   what="/health: the source unreachable once its broker is lost")
        body = _health(api)
        assert body is not None and body["status"] == "degraded"
        assert body["sources"]["kafka"]["last_error"] == (
            f"lost the connection to {broker.bootstrap} after start (fetches fail; retrying)")
        broker.restart()
        broker.produce("events", ndjson(records[300:]))
        wait_until(lambda: set(stage_ids(stage)) >= {r["id"] for r in records},
                   timeout=60, what="every record staged once the broker is back")
        wait_until(lambda: (_health(api) or {}).get("sources", {}).get("kafka")
                   == {"state": "running"}, timeout=30, what="/health ok again")
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert_stage_covers(stage, records)
    assert summary["sources"]["kafka"]["records"] >= len(records)
    assert "kafka source kafka: brokers answer again; fetching" in daemon.log
