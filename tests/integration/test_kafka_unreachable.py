"""A Kafka source whose brokers cannot be reached (down at start, a wrong
`bootstrap_servers`) reads nothing: /health must say so instead of "ok", and turn
ok by itself once a broker answers and the records flow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.kafka import KafkaBroker
from tests.helpers import (
    Daemon,
    assert_stage_equals,
    base_config,
    count_stage_rows,
    free_port,
    health,
    kafka_source,
    make_records,
    ndjson,
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
