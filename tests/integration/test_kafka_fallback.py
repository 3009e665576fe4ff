"""The Kafka source end to end on both of its read paths, one input, one result: through
the block reader (sources/kafka/fetch.py: a partition's fetch as one block of values)
and through the `ConsumerRecord` lists `getmany` returns when `install_block_reader`
finds an aiokafka whose fetcher it does not know (`blocks_of` converts them).

The daemon runs as a subprocess, as in test_kafka_source.py.  For the fallback it is
started through the CLI's `entry` after one of the fetcher fields the block reader
checks for is made one aiokafka does not have: `install_block_reader` takes its real
"not the fetcher it knows" branch; nothing in the product switches it.

One run of each path: 4 partitions, small fetches (several blocks a partition), a
part produced, staged exactly once, kill -9 before any offset commit, a second part
produced, a restart that reads everything again from offset 0, so its blocks span
the stage's fences (the end of what the killed run staged) and are cut there.  Among
the values: tombstones (null values, one last in a partition), values holding
several lines, bad lines alone and inside such a value.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

import tests.helpers.process
from tests.fixtures.kafka import COMMIT_TIMEOUT_S, KafkaBroker
from tests.helpers import (
    COLUMNS,
    Daemon,
    assert_stage_equals,
    base_config,
    count_stage_rows,
    kafka_source,
    make_records,
    ndjson,
    read_dead_letters,
    stage_files,
    stage_sink,
    stop,
    wait_for_log,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(120)

TOPIC = "events"
PARTITIONS = 4
GROUP = "gfallback"
FALLBACK_LOG = "reading message by message"
# the CLI with the block reader's knowledge of aiokafka's fetcher made wrong
FALLBACK_LAUNCHER = ("import streamer.sources.kafka.fetch as fetch\n"
                     "fetch.AIOKAFKA_FIELDS |= {'_a_field_no_aiokafka_has'}\n"
                     "from streamer.cli import entry\n"
                     "entry()\n")

Value = bytes | None


class Topic:
    """What was produced: values in produce calls (value i of a call goes to partition
    i % PARTITIONS, KafkaBroker.aproduce), where each landed, which records it holds."""

    def __init__(self) -> None:
        self.ends = [0] * PARTITIONS  # the next offset of each partition
        self.records: list[dict[str, Any]] = []
        self.place: dict[int, tuple[int, int]] = {}  # record id -> (partition, offset)
        self.bad: list[tuple[str, int, str]] = []  # dead letters: origin, offset, raw

    def add(self, broker: KafkaBroker, values: list[Value],
            records: dict[int, list[dict[str, Any]]], bad: set[bytes]) -> None:
        """Produce `values`; `records[i]`: the records value i holds."""
        broker.produce(TOPIC, values)  # type: ignore[arg-type]
        for i, value in enumerate(values):
            partition = i % PARTITIONS
            offset = self.ends[partition]
            self.ends[partition] += 1
            for record in records.get(i, []):
                self.records.append(record)
                self.place[record["id"]] = (partition, offset)
            for line in (value or b"").split(b"\n"):
                if line in bad:
                    self.bad.append((f"kafka:{TOPIC}/{partition}", offset, line.decode()))


def part(start: int, n: int, seed: int, bad: list[bytes], tombstones: list[int],
         mixed_at: int) -> tuple[list[Value], dict[int, list[dict[str, Any]]]]:
    """`n` records from id `start`, one value each, then three records in one value
    (with `bad[0]` between two of them) at `mixed_at`, the other bad lines as values
    of their own, tombstones inserted at the given indexes (past the end: appended)."""
    records = make_records(n, seed=seed, start=start)
    values: list[Value] = list(ndjson(records))
    held: list[list[dict[str, Any]]] = [[r] for r in records]
    joined = make_records(3, seed=seed + 1, start=start + n)
    lines = ndjson(joined)
    values.insert(mixed_at, lines[0] + b"\n" + bad[0] + b"\n" + lines[1] + b"\n" + lines[2])
    held.insert(mixed_at, joined)
    for line in bad[1:]:
        values.insert(len(values) // 3, line)
        held.insert(len(held) // 3, [])
    for index in tombstones:
        values.insert(index, None)
        held.insert(index, [])
    return values, dict(enumerate(held))


def committed_offsets(broker: KafkaBroker) -> list[int]:
    """The group's committed offset of each partition (0: none), read without joining."""

    async def read() -> list[int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=GROUP,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            return [await asyncio.wait_for(consumer.committed(TopicPartition(TOPIC, p)),
                                           COMMIT_TIMEOUT_S) or 0
                    for p in range(PARTITIONS)]
        finally:
            await consumer.stop()

    return asyncio.run(read())


@pytest.fixture(params=["block_reader", "fallback"])
def read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which path the daemons of the test read through."""
    if request.param == "fallback":
        monkeypatch.setattr(tests.helpers.process, "streamer_cmd",
                            lambda *args: [sys.executable, "-c", FALLBACK_LAUNCHER, *args])
    yield request.param


def run_until_staged(config: Path, log: Path, rows: int) -> Daemon:
    """A daemon, once at least `rows` rows are staged."""
    daemon = Daemon(config, log)
    try:
        wait_for_log(daemon, "kafka source kafka: assigned")
        wait_until(lambda: count_stage_rows(log.parent / "stage") >= rows, timeout=60,
                   what=f"{rows} rows staged")
    except BaseException:
        daemon.stop()
        raise
    return daemon


def test_both_read_paths_stage_the_same_records_once_across_a_replay(
        kafka_broker: KafkaBroker, tmp_path: Path, read_path: str) -> None:
    kafka_broker.create_topic(TOPIC, PARTITIONS)
    topic = Topic()
    first_bad = [b'{"id": 1, "cut', b"not json", b"[1, 2]"]
    values, held = part(0, 2500, 3, first_bad, tombstones=[0, 901, 902], mixed_at=1200)
    topic.add(kafka_broker, values, held, set(first_bad))
    # no commit before the kill: the restart reads everything again, across the fences;
    # small fetches and polls: several blocks a partition, cut by max_poll_records too
    text = (base_config(tmp_path, checkpoint_interval_s=3600)
            + kafka_source(kafka_broker, GROUP, "max_partition_fetch_bytes = 32768\n"
                                                "max_poll_records = 150")
            + stage_sink(tmp_path, max_file_age_s=0.2,
                         extra="exactly_once = true\nmax_file_records = 400"))
    config = write_config(tmp_path, text)
    daemon = run_until_staged(config, tmp_path / "run1.log", len(topic.records))
    daemon.kill()
    assert committed_offsets(kafka_broker) == [0] * PARTITIONS
    # a file the kill caught before its completion record is deleted at the restart
    staged_at_kill = {path: len(rows) - 1 for path, rows in stage_files(tmp_path / "stage")}

    second_bad = [b"{'single': 'quotes'}", b'{"x": 1} trailing']
    values, held = part(len(topic.records), 1500, 5, second_bad,
                        tombstones=[7, sys.maxsize], mixed_at=333)
    topic.add(kafka_broker, values, held, set(second_bad))
    assert values[-1] is None  # a partition whose last message is a tombstone
    daemon = run_until_staged(config, tmp_path / "run2.log", len(topic.records))
    try:
        summary = stop(daemon)
    finally:
        daemon.stop()

    logs = (tmp_path / "run1.log").read_text() + daemon.log
    assert (FALLBACK_LOG in logs) == (read_path == "fallback")
    assert_stage_equals(tmp_path / "stage", topic.records)
    # record by record: one file per partition, its rows in offset order
    for path, (header, *rows) in stage_files(tmp_path / "stage"):
        assert header == COLUMNS
        places = [topic.place[int(row[0])] for row in rows]
        assert len({p for p, _ in places}) == 1, path
        assert places == sorted(places), path
    # the restart read everything again; what the killed run staged (and kept) was
    # skipped at the fences, the rest staged
    kept = sum(rows for path, rows in staged_at_kill.items() if path.exists())
    assert kept > 0
    assert summary["sources"]["kafka"]["records"] == len(topic.records)
    assert summary["sources"]["kafka"]["rejected"] == len(topic.bad)
    assert summary["sinks"]["stage"]["records_skipped_replayed"] == kept
    dead = read_dead_letters(tmp_path / "data", "kafka")
    assert sorted({(d["origin"], d["offset"], d["raw"]) for d in dead}) == sorted(topic.bad)
    assert len(topic.bad) == len(first_bad) + len(second_bad)
    # everything committed, tombstones last in a partition included
    assert committed_offsets(kafka_broker) == topic.ends
