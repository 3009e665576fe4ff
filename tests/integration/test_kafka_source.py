"""Kafka source end to end: the tansu broker (tests/fixtures/kafka.py), the daemon as a
subprocess, the local stage sink, contents compared.

Records are produced round-robin: value i lands on partition i % 4 at offset i // 4
(KafkaBroker.aproduce), so every staged id tells its partition and offset.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.fixtures.kafka import COMMIT_TIMEOUT_S, KafkaBroker
from tests.helpers import (
    COLUMNS,
    Daemon,
    assert_stage_covers,
    assert_stage_equals,
    base_config,
    count_stage_rows,
    kafka_source,
    make_records,
    ndjson,
    read_dead_letters,
    stage_files,
    stage_ids,
    stage_sink,
    stop,
    wait_for_log,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(120)

TOPIC = "events"
PARTITIONS = 4
ASSIGNED = r"kafka source kafka: assigned (.*)\n"


def partition_of(record_id: int) -> int:
    return record_id % PARTITIONS


def offset_of(record_id: int) -> int:
    return record_id // PARTITIONS


def committed_offsets(broker: KafkaBroker, group: str) -> dict[int, int]:
    """The group's committed offsets, read without joining the group."""

    async def read() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            out = {}
            for p in range(PARTITIONS):
                offset = await asyncio.wait_for(
                    consumer.committed(TopicPartition(TOPIC, p)), COMMIT_TIMEOUT_S)
                out[p] = offset or 0
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


def rows_by_instance(stage: Path) -> dict[str, list[list[str]]]:
    """Stage rows grouped by the instance id at the end of their window's name."""
    out: dict[str, list[list[str]]] = {}
    for path, (header, *rows) in stage_files(stage):
        instance = path.parent.name.rsplit("Z-", 1)[1]
        assert header == COLUMNS
        out.setdefault(instance, []).extend(rows)
    return out


def test_100k_records_from_four_partitions(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    n = 100_000
    records = make_records(n)
    values = ndjson(records)
    # one value holding two NDJSON lines (two records), a bad value, a non-object
    extra = make_records(2, seed=9, start=n)
    bad = [b"not json", b"[1, 2]"]
    values += [b"\n".join(ndjson(extra)) + b"\n", *bad]
    # tombstones (null values: no record) among them, before and after a bad value
    values[n // 2:n // 2] = [None, None]  # type: ignore[list-item]
    values.append(None)  # type: ignore[arg-type]
    kafka_broker.create_topic(TOPIC, PARTITIONS)
    kafka_broker.produce(TOPIC, values)
    # fetches (tansu sends up to ~5 MB a partition) are passed on in ~256 KiB chunks
    text = (base_config(tmp_path)
            + kafka_source(kafka_broker, "g100k", "max_partition_fetch_bytes = 262144")
            + stage_sink(tmp_path, extra="max_file_records = 40000"))
    daemon = Daemon(write_config(tmp_path, text), tmp_path / "daemon.log")
    stage = tmp_path / "stage"
    try:
        wait_until(lambda: count_stage_rows(stage) >= n + 2, timeout=90,
                   what="every record staged")
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert_stage_equals(stage, records + extra)

    dead = read_dead_letters(tmp_path / "data", "kafka")
    where = [(f"kafka:{TOPIC}/{partition_of(i)}", offset_of(i), v.decode())
             for i, v in enumerate(values) if v in bad]
    assert sorted((d["origin"], d["offset"], d["raw"]) for d in dead) == sorted(where)
    assert summary["sources"]["kafka"]["records"] == n + 2
    assert summary["sources"]["kafka"]["rejected"] == 2
    assert summary["sinks"]["stage"]["delivered"] == n + 2
    # everything is committed: the group has nothing left to read
    assert kafka_broker.consume_all(TOPIC, "g100k", commit=False) == []


def test_kill_9_and_restart_duplicates_only_uncommitted(kafka_broker: KafkaBroker,
                                                        tmp_path: Path) -> None:
    n = 30_000
    records = make_records(n)
    kafka_broker.create_topic(TOPIC, PARTITIONS)
    kafka_broker.produce(TOPIC, ndjson(records))
    # small fetches and at most 2 unacknowledged batches per partition: the run is
    # slow enough (acks come with the stage files, every 0.5 s) to be killed midway
    text = (base_config(tmp_path)
            + kafka_source(kafka_broker, "gkill",
                           "max_poll_records = 500\nmax_in_flight_batches = 2")
            + stage_sink(tmp_path, extra="batch = {linger_ms = 200}"))
    config = write_config(tmp_path, text)
    stage = tmp_path / "stage"
    daemon = Daemon(config, tmp_path / "daemon1.log")
    try:
        wait_until(lambda: count_stage_rows(stage) >= 8000, timeout=60, what="some rows")
        daemon.kill()
    finally:
        daemon.stop()
    committed = committed_offsets(kafka_broker, "gkill")
    before = stage_ids(stage)
    assert sum(committed.values()) > 0 and sum(before.values()) < n, (committed, before.total())
    # everything below a committed offset was staged before the kill
    assert all(before[i] == 1 for i in range(n) if offset_of(i) < committed[partition_of(i)])

    daemon = Daemon(config, tmp_path / "daemon2.log")
    try:
        wait_until(lambda: set(stage_ids(stage)) >= set(range(n)), timeout=60,
                   what="every record staged after the restart")
        stop(daemon)
    finally:
        daemon.stop()
    counts = assert_stage_covers(stage, records)
    duplicates = {i for i, c in counts.items() if c > 1}
    # duplicates only from batches not committed at the kill, each at most twice
    assert all(offset_of(i) >= committed[partition_of(i)] for i in duplicates)
    assert all(c <= 2 for c in counts.values())
    uncommitted = sum(1 for i in range(n) if offset_of(i) >= committed[partition_of(i)])
    print(f"committed at kill {committed}; staged before the kill {before.total()}; "
          f"duplicates {len(duplicates)} (bound: {uncommitted} uncommitted)")
    assert len(duplicates) <= uncommitted


def test_two_instances_share_partitions_and_fail_over(kafka_broker: KafkaBroker,
                                                      tmp_path: Path) -> None:
    half = 20_000
    records = make_records(2 * half)
    values = ndjson(records)
    kafka_broker.create_topic(TOPIC, PARTITIONS)

    def config(instance: str) -> Path:
        text = (base_config(tmp_path, instance_id=instance, data=f"data_{instance}")
                + kafka_source(kafka_broker, "gpair") + stage_sink(tmp_path))
        return write_config(tmp_path, text, name=f"{instance}.toml")

    stage = tmp_path / "stage"
    a = Daemon(config("a"), tmp_path / "a.log")
    b = None
    try:
        wait_for_log(a, ASSIGNED)
        b = Daemon(config("b"), tmp_path / "b.log")
        b_parts = wait_for_log(b, ASSIGNED)[0].group(1).split(", ")
        a_parts = wait_for_log(a, ASSIGNED, count=2)[1].group(1).split(", ")
        assert len(a_parts) == len(b_parts) == 2 and not set(a_parts) & set(b_parts)
        kafka_broker.produce(TOPIC, values[:half])
        wait_until(lambda: set(stage_ids(stage)) >= set(range(half)), timeout=60,
                   what="first half staged by both instances")
        b.kill()
        committed = committed_offsets(kafka_broker, "gpair")
        kafka_broker.produce(TOPIC, values[half:])
        taken = wait_for_log(a, ASSIGNED, count=3, timeout=30)[2].group(1).split(", ")
        assert sorted(taken) == sorted(a_parts + b_parts)
        wait_until(lambda: set(stage_ids(stage)) >= set(range(2 * half)), timeout=60,
                   what="second half staged by the survivor")
        stop(a)
    finally:
        a.stop()
        if b is not None:
            b.stop()
    assert_stage_covers(stage, records)
    rows = rows_by_instance(stage)
    label = f"{TOPIC}[{{}}]".format
    b_ids = {int(r[0]) for r in rows["b"]}
    a_ids = {int(r[0]) for r in rows["a"]}
    # b staged only its own partitions, and some of them
    assert b_ids and {label(partition_of(i)) for i in b_ids} == set(b_parts)
    assert {label(partition_of(i)) for i in a_ids} == set(a_parts + b_parts)
    # a read b's partitions from b's committed offsets on: duplicates only from there
    assert all(offset_of(i) >= committed[partition_of(i)]
               for i in a_ids & b_ids)
    assert {label(partition_of(i)) for i in a_ids & b_ids} <= set(b_parts)
    # after the kill the survivor staged the second half of b's partitions
    assert {i for i in range(half, 2 * half) if label(partition_of(i)) in b_parts} <= a_ids
