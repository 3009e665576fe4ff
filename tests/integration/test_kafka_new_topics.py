"""A topic created while the daemon runs that matches its `topic_pattern` is read
within `metadata_max_age_ms` (before 2026-12-04 only after aiokafka's fixed 5 minutes
of metadata age: a pattern's new topic sat unread, and with `start_from = "latest"`
what it received meanwhile was skipped)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fixtures.kafka import CONSUMER_TIMING, KafkaBroker
from tests.helpers import (
    Daemon,
    assert_stage_equals,
    base_config,
    count_stage_rows,
    make_records,
    ndjson,
    stage_sink,
    stop,
    toml_keys,
    wait_for_log,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("start_from", ["earliest", "latest"])
def test_a_new_topic_matching_the_pattern_is_read_soon(kafka_broker: KafkaBroker,
                                                      tmp_path: Path, start_from: str) -> None:
    first, later = make_records(20), make_records(30, start=1000)
    kafka_broker.create_topic("logs-a", 1)
    source = ("[sources.kafka]\n"
              + toml_keys(type="kafka", bootstrap_servers=kafka_broker.bootstrap,
                          topic_pattern="logs-.*", group_id=f"new-{start_from}",
                          start_from=start_from, metadata_max_age_ms=1000,
                          **CONSUMER_TIMING))
    text = base_config(tmp_path) + source + "\n" + stage_sink(tmp_path)
    daemon = Daemon(write_config(tmp_path, text), tmp_path / "daemon.log")
    stage = tmp_path / "stage"
    try:
        wait_for_log(daemon, r"assigned logs-a\[0\]")
        kafka_broker.produce("logs-a", ndjson(first))
        wait_until(lambda: count_stage_rows(stage) >= len(first), timeout=20,
                   what="the first topic's records staged")
        kafka_broker.create_topic("logs-b", 1)
        created = time.monotonic()
        wait_for_log(daemon, r"assigned .*logs-b\[0\]", timeout=15)
        kafka_broker.produce("logs-b", ndjson(later))
        wait_until(lambda: count_stage_rows(stage) >= len(first) + len(later), timeout=20,
                   what="the new topic's records staged")
        assert time.monotonic() - created < 15
        stop(daemon)
    finally:
        daemon.stop()
    assert_stage_equals(stage, first + later)
