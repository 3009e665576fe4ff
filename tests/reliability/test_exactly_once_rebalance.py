"""Exactly once (issue #19) across instances: 4 Kafka partitions read by two instances
of one consumer group into one S3 stage (moto) in exactly-once mode.  One instance runs
throughout; the other is killed -9 at seeded random moments and started again, so its
partitions move to the survivor and back on every rebalance.  At the end every record
is in the stage once, cell for cell: the new owner of a partition starts at the fence
the ledger in the stage gives it, not at the last committed offset."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.moto_s3 import MotoServer
from tests.helpers import (
    COLUMNS,
    Daemon,
    base_config,
    kafka_source,
    list_keys,
    make_records,
    ndjson,
    read_rows,
    stage_sink,
    stop,
    summary_identity_problems,
    toml_keys,
    wait_for_log,
    wait_until,
    write_config,
)
from tests.helpers.configs import AWS_REGION
from tests.helpers.records import expected_rows

pytestmark = pytest.mark.timeout(150)

RECORDS = 24_000
SEED = 41
KILLS = 6
PREFIX = "stage/"
ALL = r"kafka source kafka: assigned events\[0\], events\[1\], events\[2\], events\[3\]"


def config(tmp_path: Path, kafka: KafkaBroker, moto: MotoServer, bucket: str,
           instance: str) -> Path:
    # commits every 2 s: a kill finds staged files whose offsets are not committed yet
    text = (base_config(tmp_path, data=f"data-{instance}", instance_id=instance,
                        checkpoint_interval_s=2.0)
            + kafka_source(kafka, "rebalance",
                           "max_poll_records = 200\nmax_in_flight_batches = 2")
            + stage_sink(tmp_path, url=f"s3://{bucket}/{PREFIX}", fsync=None,
                         max_file_age_s=0.3,
                         extra="exactly_once = true\nmax_file_records = 1500\n"
                               "batch = { max_records = 400, linger_ms = 50 }")
            + "[sinks.stage.s3]\n"
            + toml_keys(endpoint_url=moto.endpoint_url, region=AWS_REGION))
    return write_config(tmp_path, text, f"{instance}.toml")


class Producer(threading.Thread):
    """The records into the topic in slices, so that every kill finds work."""

    def __init__(self, kafka: KafkaBroker, records: list[bytes]) -> None:
        super().__init__(daemon=True)
        self._kafka, self._values = kafka, records
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for at in range(0, len(self._values), 800):
                self._kafka.produce("events", self._values[at:at + 800])
                time.sleep(0.4)
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_partitions_moving_between_instances_are_staged_once(
        kafka_broker: KafkaBroker, moto_s3: MotoServer, s3_bucket: str,
        tmp_path: Path) -> None:
    rng = random.Random(SEED)
    records = make_records(RECORDS, seed=SEED)
    kafka_broker.create_topic("events", 4)
    env = moto_s3.aws_env()
    survivor_config = config(tmp_path, kafka_broker, moto_s3, s3_bucket, "a")
    victim_config = config(tmp_path, kafka_broker, moto_s3, s3_bucket, "b")
    producer = Producer(kafka_broker, ndjson(records))
    survivor = Daemon(survivor_config, tmp_path / "a.log", env=env)
    try:
        taken = len(wait_for_log(survivor, ALL))
        producer.start()
        for run in range(KILLS):
            victim = Daemon(victim_config, tmp_path / f"b{run}.log", env=env)
            try:
                # it owns partitions (a rebalance moved them from the survivor) and works
                wait_for_log(victim, "kafka source kafka: assigned events")
                time.sleep(rng.uniform(0.3, 2.5))
                assert victim.proc.poll() is None, victim.log[-3000:]
                victim.kill()
            finally:
                victim.stop()
            # the survivor takes its partitions over (from the ledger's fences)
            taken = len(wait_for_log(survivor, ALL, count=taken + 1, timeout=20))
        producer.join(60)
        assert producer.error is None and not producer.is_alive(), producer.error

        last = Daemon(victim_config, tmp_path / "b-last.log", env=env)
        try:
            wait_until(lambda: len(staged_rows(moto_s3, s3_bucket)) >= RECORDS, timeout=60,
                       what="every record staged")
            stop(last)
        finally:
            last.stop()
        summary = stop(survivor)
    finally:
        survivor.stop()

    want = Counter(map(tuple, expected_rows(records, COLUMNS)))
    got = Counter(map(tuple, staged_rows(moto_s3, s3_bucket)))
    assert got == want, (f"stage: {sum((want - got).values())} lost, "
                         f"{sum((got - want).values())} duplicated or unknown")
    # what the survivor gave back at the restarts is final there, not in flight
    assert summary["sinks"]["stage"]["in_flight"] == 0, summary["sinks"]["stage"]
    assert not summary_identity_problems(summary)
    markers = [k for k in list_keys(moto_s3.s3(), s3_bucket, PREFIX) if "/_ledger/" in k]
    assert markers  # the hand-offs went through the ledger
    print("survivor skipped as staged by the other:",
          summary["sinks"]["stage"].get("records_skipped_replayed"), "markers:", len(markers))


def staged_rows(moto: MotoServer, bucket: str) -> list[list[str]]:
    return read_rows(moto.s3(), bucket, PREFIX, columns=COLUMNS)[1]
