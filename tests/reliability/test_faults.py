"""Faults while following (issue #6): TD answering 30% of requests with mixed faults and
the S3 stage's endpoint down for seconds, in one run; a Kafka broker restart."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.moto_s3 import MotoServer, TcpProxy
from tests.fixtures.td import TDEmulator
from tests.helpers import (
    BENCH_COLUMNS,
    Daemon,
    assert_stage_covers,
    base_config,
    expected_rows,
    free_port,
    kafka_source,
    make_records,
    ndjson,
    read_rows,
    s3_stage_config,
    scrape,
    stage_ids,
    stage_sink,
    staged_keys,
    stop,
    summary_identity_problems,
    summary_of,
    td_sink,
    wait_until,
    write_config,
    write_ndjson,
)
from tests.reliability.helpers import Watcher, stage_duplicates, td_coverage

pytestmark = pytest.mark.timeout(150)

# 30% of requests: 6% each of 500, 429, slow, reset before the body, reset after storing
MIXED_FAULTS = {"error_500": 0.06, "throttle_429": 0.06, "retry_after": 0, "slow": 0.06,
                "slow_seconds": 0.2, "reset_before": 0.06, "reset_after": 0.06}
PREFIX = "stage/"


def test_td_faults_and_s3_outage_in_one_run(tmp_path: Path, td_emulator: TDEmulator,
                                            moto_s3: MotoServer, s3_bucket: str,
                                            s3_proxy: TcpProxy, record_property) -> None:
    records = make_records(12_000, seed=4)
    parts = [records[:4000], records[4000:8000], records[8000:]]
    source = tmp_path / "in.ndjson"
    write_ndjson(source, parts[0])
    port = free_port()
    td_emulator.set_faults(**MIXED_FAULTS)
    config = s3_stage_config(tmp_path, paths=[source], bucket=s3_bucket, follow=True,
                             s3_endpoint=s3_proxy.endpoint_url, prefix=PREFIX,
                             api=f"127.0.0.1:{port}",
                             sink="max_file_age_s = 0.3\nwindow_age_s = 1.0",
                             s3="connect_timeout_s = 1\nread_timeout_s = 2\n"
                                "request_timeout_s = 3")
    # ingest in 50-record requests: the faults hit a few hundred requests
    config.write_text(config.read_text() + td_sink(
        td_emulator.url, api="ingest", extra="batch = { max_records = 50, linger_ms = 50 }"))
    daemon = Daemon(config, tmp_path / "daemon.log",
                    env={**moto_s3.aws_env(), "TD_WRITE_KEY": td_emulator.key})
    s3 = moto_s3.s3()
    sinks = ["st", "td"]
    try:
        with Watcher(daemon, port, sinks, "f") as watcher:
            wait_until(lambda: staged_keys(s3, s3_bucket, PREFIX), timeout=120,
                       what="the first object in S3")
            s3_proxy.disable("hang")  # S3 stops answering: requests time out ...
            write_ndjson(source, parts[1], mode="ab")
            time.sleep(2.5)
            s3_proxy.disable("reset")  # ... then refuses them
            retries = ("streamer_sink_retries_total", (("sink", "st"),))
            wait_until(lambda: scrape(port).get(retries, 0) >= 2, timeout=120,
                       what="the stage sink retrying")
            time.sleep(1.5)
            s3_proxy.enable()
            write_ndjson(source, parts[2], mode="ab")

            def settled() -> bool:
                m = scrape(port)
                return all(m.get(("streamer_sink_delivered_total", (("sink", s),))) == len(records)
                           and m.get(("streamer_sink_in_flight_records", (("sink", s),))) == 0
                           for s in sinks)

            wait_until(settled, timeout=90, what="every record delivered by both sinks")
            time.sleep(1.0)  # following: nothing to read, the daemon keeps running
            assert daemon.proc.poll() is None
        assert not watcher.problems, watcher.problems[:5]
        assert watcher.scrapes >= 10
        stop(daemon)
    finally:
        daemon.stop()
    summary = summary_of(daemon.log)
    assert not summary_identity_problems(summary)
    for name in sinks:
        sink = summary["sinks"][name]
        assert (sink["received"], sink["delivered"], sink["dead_lettered"], sink["dropped"],
                sink["in_flight"]) == (len(records), len(records), 0, 0, 0), (name, sink)
    faults = td_emulator.stats()["faults"]
    assert all(faults[kind] > 0 for kind in
               ("error_500", "throttle_429", "slow", "reset_before", "reset_after")), faults
    td_dups = td_coverage(td_emulator, records)
    _, rows = read_rows(s3, s3_bucket, PREFIX)
    staged = Counter(map(tuple, rows))
    wanted = Counter(map(tuple, expected_rows(records, BENCH_COLUMNS)))
    assert not wanted - staged, "records lost in the S3 stage"
    stage_dups = sum((staged - wanted).values())
    print(f"{len(records)} records, TD faults {faults}, S3 down ~4 s, "
          f"{watcher.scrapes} scrapes: lost 0; duplicates td {td_dups}, stage {stage_dups}")
    record_property("td_faults", sum(faults.values()))
    record_property("duplicates_td", td_dups)


def test_kafka_broker_restart_keeps_every_record(tmp_path: Path,
                                                 kafka_broker_persistent: KafkaBroker) -> None:
    """The broker is killed mid-run and restarted with its data (S3 storage): the
    daemon rides it out and stages every produced record at least once."""
    broker = kafka_broker_persistent
    records = make_records(20_000, seed=8)
    broker.create_topic("events", 4)
    broker.produce("events", ndjson(records[:10_000]))
    # small fetches, at most 2 unacknowledged batches per partition (acks come with the
    # stage files, every 0.5 s): the broker dies with most of the topic still unread
    text = (base_config(tmp_path)
            + kafka_source(broker, "grestart", "max_poll_records = 500\n"
                           "max_in_flight_batches = 2\ncommit_timeout_s = 3")
            + stage_sink(tmp_path, extra="batch = {linger_ms = 200}"))
    daemon = Daemon(write_config(tmp_path, text), tmp_path / "daemon.log")
    stage = tmp_path / "stage"
    try:
        wait_until(lambda: stage_ids(stage).total() >= 2000, timeout=60, what="some rows")
        broker.kill()
        assert stage_ids(stage).total() < 10_000
        time.sleep(2.0)
        assert daemon.proc.poll() is None
        broker.restart()
        broker.produce("events", ndjson(records[10_000:]))
        wait_until(lambda: set(stage_ids(stage)) >= {r["id"] for r in records}, timeout=90,
                   what="every record staged after the broker restart")
        assert daemon.proc.poll() is None
        stop(daemon)
    finally:
        daemon.stop()
    counts = assert_stage_covers(stage, records)
    # every offset committed at the clean stop: the group has nothing left to read
    assert broker.consume_all("events", "grestart", commit=False) == []
    print(f"{len(records)} records, broker killed and restarted: lost 0; "
          f"duplicates {stage_duplicates(counts)}")
