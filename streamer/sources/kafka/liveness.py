"""Whether a running consumer can still fetch: a broker lost after start, or
fetches that keep failing (a group it cannot join).

aiokafka retries a lost broker inside its fetcher and `getmany` only returns
nothing, so the source asks the consumer's client which partition leaders it
holds no connection to.  This reads aiokafka internals (`_client._conns`, the
cluster metadata); if they change, the check says nothing (never a false alarm).
"""

from __future__ import annotations

import time
from typing import Any

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import InconsistentGroupProtocolError

CHECK_EVERY_S = 0.5
LOST_AFTER_S = 2.0  # a reconnect or a leader moving within this is not a loss
QUIET_S = 5.0  # fetches failing stopped when none failed this long


def unfetchable_brokers(consumer: Any) -> list[str] | None:
    """HOST:PORT of the brokers leading this consumer's partitions (or, with no
    partition assigned, of any broker) that it holds no connection to; None when
    aiokafka does not tell."""
    try:
        client = consumer._client
        cluster = client.cluster
        connected = {node for (node, _group), conn in client._conns.items()
                     if conn.connected()}
        leaders = {cluster.leader_for_partition(tp) for tp in consumer.assignment()}
    except (AttributeError, TypeError):
        return None
    if not leaders:  # nothing to fetch: the group coordinator and metadata still need one
        return [] if connected else ["every bootstrap server"]
    lost = []
    for node in sorted(leaders, key=str):
        if node is None or node == -1:
            lost.append("a partition leader (none known)")
        elif node not in connected:
            broker = cluster.broker_metadata(node)
            lost.append(f"{broker.host}:{broker.port}" if broker is not None else f"node {node}")
    return lost


# the partition assignors the consumer offers, in its order of preference: Kafka picks
# one every member of a group offers (Java's default is range + cooperative-sticky,
# librdkafka's range + roundrobin, aiokafka's roundrobin)
ASSIGNORS = (RoundRobinPartitionAssignor, RangePartitionAssignor)
ASSIGNOR_NAMES = ", ".join(assignor.name for assignor in ASSIGNORS)


def fetch_failure(exc: Exception, group: str) -> str:
    """/health's words for a fetch that keeps failing with `exc`."""
    if isinstance(exc, InconsistentGroupProtocolError):
        return (f"cannot join group {group}: {exc} (another member offers none of the "
                f"partition assignors streamer offers: {ASSIGNOR_NAMES}); retrying")
    return f"fetches fail: {exc}; retrying"


class BrokerWatch:
    """The reason a running consumer cannot fetch, once that lasted LOST_AFTER_S;
    checked at most every CHECK_EVERY_S (per fetch, never per message).  Failed
    fetches count too (`failed`): they end when a fetch of an assigned partition
    succeeds, or when none failed for QUIET_S (an empty fetch between two failed
    joins says nothing)."""

    def __init__(self) -> None:
        self._checked = 0.0
        self._lost_since: float | None = None
        self._failing_since: float | None = None
        self._failed_at = 0.0
        self._failure: str | None = None
        self._just_failed = False
        self._lost: str | None = None  # the brokers' part of the reason

    @property
    def reason(self) -> str | None:
        return self._lost or self._failure

    def failed(self, why: str) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        self._failed_at = now
        self._just_failed = True  # the check that follows is this failure's
        if now - self._failing_since >= LOST_AFTER_S:
            self._failure = why

    def check(self, consumer: Any, fetched: bool) -> str | None:
        if self._just_failed:
            self._just_failed = False
        elif self._failing_since is not None and (
                consumer.assignment() or time.monotonic() - self._failed_at > QUIET_S):
            self._failing_since, self._failure = None, None
        self._lost = self._check_brokers(consumer, fetched)
        return self.reason

    def _check_brokers(self, consumer: Any, fetched: bool) -> str | None:
        now = time.monotonic()
        if fetched and self._lost is None and self._lost_since is None:
            return None
        if now - self._checked < CHECK_EVERY_S:
            return self._lost
        self._checked = now
        lost = unfetchable_brokers(consumer)
        if not lost:
            self._lost_since, self._lost = None, None
            return None
        if self._lost_since is None:
            self._lost_since = now
        if now - self._lost_since >= LOST_AFTER_S:
            self._lost = (f"lost the connection to {', '.join(lost)} after start "
                           "(fetches fail; retrying)")
        return self._lost
