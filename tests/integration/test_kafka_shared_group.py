"""A consumer group shared with another client. Kafka chooses one partition assignor
that every member offers; Java consumers offer `range` (and cooperative-sticky) by
default, librdkafka (kcat, confluent-kafka) `range,roundrobin`. Before 2026-12-05
streamer offered only `roundrobin` (aiokafka's default), so it could not join a group
another client was in: `fetch failed: InconsistentGroupProtocolError` every second,
nothing read, and /health said ok. Now it offers `roundrobin` and `range`, and a
group it still cannot join (a member offering neither) makes /health `degraded`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

from tests.fixtures.kafka import CONSUMER_TIMING, KafkaBroker
from tests.helpers import (
    Daemon,
    base_config,
    free_port,
    health,
    kafka_source,
    read_stage_rows,
    stage_sink,
    stop,
    wait_for_log,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(120)


class OtherClient:
    """A consumer of the group in a thread of its own: it reads what it is assigned
    and commits it, as another service sharing the group would."""

    def __init__(self, broker: KafkaBroker, group: str, assignor: type) -> None:
        self.broker, self.group, self.assignor = broker, group, assignor
        self.ids: list[int] = []
        self.assigned = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            "events", bootstrap_servers=self.broker.bootstrap, group_id=self.group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=(self.assignor,), **CONSUMER_TIMING)
        await consumer.start()
        try:
            while not self._stop.is_set():
                fetched = await consumer.getmany(timeout_ms=100)
                if consumer.assignment():
                    self.assigned.set()
                for messages in fetched.values():
                    self.ids.extend(orjson.loads(m.value)["id"] for m in messages)
                if fetched:
                    await asyncio.wait_for(consumer.commit(), 10)
        finally:
            await consumer.stop()

    @contextmanager
    def running(self) -> Iterator[OtherClient]:
        self._thread.start()
        try:
            assert self.assigned.wait(30), "the other client was never assigned"
            yield self
        finally:
            self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)


def staged_ids(stage: Path) -> list[int]:
    return [int(row[0]) for row in read_stage_rows(stage)[1]]


def config(tmp_path: Path, broker: KafkaBroker, api: int) -> Path:
    return write_config(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{api}")
                        + kafka_source(broker, "shared") + stage_sink(tmp_path,
                                                                      columns=["id"]))


def test_a_group_shared_with_a_range_assignor_client_is_joined_and_split(
        tmp_path: Path, kafka_broker: KafkaBroker) -> None:
    kafka_broker.create_topic("events", 4)
    api = free_port()
    with OtherClient(kafka_broker, "shared", RangePartitionAssignor).running() as other:
        daemon = Daemon(config(tmp_path, kafka_broker, api), tmp_path / "daemon.log")
        try:
            wait_for_log(daemon, r"assigned events\[\d")
            values = [orjson.dumps({"id": n}) for n in range(400)]
            kafka_broker.produce("events", values)  # round-robin over the 4 partitions
            stage = tmp_path / "stage"
            wait_until(lambda: len(staged_ids(stage)) + len(other.ids) >= 400, timeout=60,
                       what="every record read by one member or the other")
            summary = stop(daemon)
        finally:
            daemon.stop()
    staged = staged_ids(stage)
    assert staged and other.ids, (len(staged), len(other.ids))  # the partitions split
    assert sorted(staged + other.ids) == list(range(400))  # each once, by one of them
    assert summary["sources"]["kafka"]["records"] == len(staged)
    assert "InconsistentGroupProtocol" not in daemon.log


def test_a_group_streamer_cannot_join_degrades_health(
        tmp_path: Path, kafka_broker: KafkaBroker) -> None:
    """Only the degraded state: tansu keeps an empty group's protocol after its last
    member left (Kafka forgets it), so the join that follows cannot be shown here; the
    state clears on the first fetch with partitions assigned (tests/unit/sources/kafka/
    test_liveness.py)."""
    kafka_broker.create_topic("events", 2)
    api = free_port()
    daemon = Daemon(config(tmp_path, kafka_broker, api), tmp_path / "daemon.log")
    try:
        with OtherClient(kafka_broker, "shared", StickyPartitionAssignor).running():
            wait_for_log(daemon, "metrics and health on")
            wait_until(lambda: health(api)[1]["status"] == "degraded", timeout=30,
                       what="/health degraded while the group cannot be joined")
            source = health(api)[1]["sources"]["kafka"]
            assert source["state"] == "unreachable", source
            assert source["last_error"] == (
                "cannot join group shared: [Error 23] InconsistentGroupProtocolError "
                "(another member offers none of the partition assignors streamer offers: "
                "roundrobin, range); retrying"), source
            summary = stop(daemon)
    finally:
        daemon.stop()
    assert summary["sources"]["kafka"]["records"] == 0
