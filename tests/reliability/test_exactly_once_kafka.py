"""Exactly once (issue #19) from Kafka, one instance: 4 partitions -> a local stage in
exactly-once mode, across seeded kill -9 at random moments and at each staging step,
then a run to the end: every record staged once, cell for cell.  (Across instances:
test_exactly_once_rebalance.py.)"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.fixtures.kafka import KafkaBroker
from tests.helpers import base_config, kafka_source, make_records, ndjson, stage_sink, write_config
from tests.helpers.staging import run_until_staged
from tests.reliability.kills import run_kills

pytestmark = pytest.mark.timeout(150)

RECORDS = 30_000
SEED = 31
RANDOM_KILLS = 6
# stage.marked: the ledger marker written, the completion record not (kept at restart)
AIMED = ["stage.written:3", "stage.completed:2", "stage.marked:2", "stage.journaled:2"]


def test_kill_9_at_every_step_stages_every_record_once(kafka_broker: KafkaBroker,
                                                       tmp_path: Path) -> None:
    records = make_records(RECORDS, seed=SEED)
    kafka_broker.create_topic("events", 4)
    kafka_broker.produce("events", ndjson(records))
    # small fetches, few batches in flight: slow enough for every kill to find work
    text = (base_config(tmp_path)
            + kafka_source(kafka_broker, "geo",
                           "max_poll_records = 300\nmax_in_flight_batches = 2")
            + stage_sink(tmp_path, max_file_age_s=0.3,
                         extra="exactly_once = true\nmax_file_records = 2000\n"
                               "batch = { max_records = 500, linger_ms = 50 }"))
    config = write_config(tmp_path, text)
    run_kills(config, tmp_path, random.Random(SEED), AIMED, RANDOM_KILLS,
              started="kafka source kafka: assigned")

    # every record once: 0 lost, 0 duplicated
    run = run_until_staged(config, tmp_path / "last.log", tmp_path / "stage", records)
    print("skipped as staged before a kill:",
          run.summary["sinks"]["stage"].get("records_skipped_replayed"))
