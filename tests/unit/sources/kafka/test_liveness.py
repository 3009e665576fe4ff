"""The lost-broker check reads aiokafka's client internals: pinned here, and the
watch's timing (a loss shown only once it lasted LOST_AFTER_S, cleared at once)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.cluster import BrokerMetadata
from aiokafka.errors import InconsistentGroupProtocolError

from streamer.sources.kafka import liveness
from streamer.sources.kafka.liveness import BrokerWatch, unfetchable_brokers

TP = TopicPartition("events", 0)


def _consumer(connected: bool, assigned: bool = True) -> SimpleNamespace:
    cluster = SimpleNamespace(leader_for_partition=lambda tp: 7,
                              broker_metadata=lambda node: BrokerMetadata(node, "b7", 9092, None))
    conns = {(7, 0): SimpleNamespace(connected=lambda: connected)}
    return SimpleNamespace(_client=SimpleNamespace(cluster=cluster, _conns=conns),
                           assignment=lambda: {TP} if assigned else set())


async def test_aiokafka_has_the_internals_read() -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
    assert isinstance(consumer._client._conns, dict)
    assert consumer._client.cluster.leader_for_partition(TP) is None
    assert unfetchable_brokers(consumer) == ["every bootstrap server"]  # nothing assigned


def test_the_leaders_without_a_connection() -> None:
    assert unfetchable_brokers(_consumer(connected=True)) == []
    assert unfetchable_brokers(_consumer(connected=False)) == ["b7:9092"]
    assert unfetchable_brokers(_consumer(False, assigned=False)) == ["every bootstrap server"]
    assert unfetchable_brokers(SimpleNamespace()) is None  # other internals: says nothing


def test_a_loss_shows_once_it_lasted_and_clears_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(liveness.time, "monotonic", lambda: now[0])
    watch = BrokerWatch()
    lost, back = _consumer(connected=False), _consumer(connected=True)
    assert watch.check(lost, fetched=False) is None
    now[0] += liveness.LOST_AFTER_S
    assert watch.check(lost, fetched=False) == (
        "lost the connection to b7:9092 after start (fetches fail; retrying)")
    now[0] += 0.1  # within CHECK_EVERY_S: not asked again
    assert watch.check(back, fetched=False) is not None
    now[0] += liveness.CHECK_EVERY_S
    assert watch.check(back, fetched=True) is None
    assert watch.check(back, fetched=True) is None


def test_failed_fetches_show_once_they_lasted_and_clear_when_assigned_or_quiet(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A group streamer cannot join: every join fails, no partition is assigned, and
    an empty fetch comes between two failures (it must not clear the state)."""
    now = [100.0]
    monkeypatch.setattr(liveness.time, "monotonic", lambda: now[0])
    watch = BrokerWatch()
    unassigned, assigned = _consumer(True, assigned=False), _consumer(True)
    why = liveness.fetch_failure(InconsistentGroupProtocolError(), "g")
    assert why == ("cannot join group g: [Error 23] InconsistentGroupProtocolError (another "
                   "member offers none of the partition assignors streamer offers: "
                   "roundrobin, range); retrying")
    watch.failed(why)
    assert watch.check(unassigned, fetched=False) is None  # not lasted yet
    now[0] += liveness.LOST_AFTER_S
    watch.failed(why)
    assert watch.check(unassigned, fetched=False) == why
    now[0] += 1.0
    assert watch.check(unassigned, fetched=False) == why  # an empty fetch between joins
    now[0] += liveness.QUIET_S
    assert watch.check(unassigned, fetched=False) is None  # none failed for QUIET_S
    watch.failed(why)
    now[0] += liveness.LOST_AFTER_S
    watch.failed("fetches fail: [Error 29] TopicAuthorizationFailedError; retrying")
    assert watch.check(assigned, fetched=False) is not None  # the check of that failure
    now[0] += 0.5
    assert watch.check(assigned, fetched=True) is None  # fetching with partitions again
