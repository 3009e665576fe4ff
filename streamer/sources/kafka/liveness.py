"""Whether a running consumer can still fetch: a broker lost after start.

aiokafka retries a lost broker inside its fetcher and `getmany` only returns
nothing, so the source asks the consumer's client which partition leaders it
holds no connection to.  This reads aiokafka internals (`_client._conns`, the
cluster metadata); if they change, the check says nothing (never a false alarm).
"""

from __future__ import annotations

import time
from typing import Any

CHECK_EVERY_S = 0.5
LOST_AFTER_S = 2.0  # a reconnect or a leader moving within this is not a loss


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


class BrokerWatch:
    """The reason a running consumer cannot fetch, once that lasted LOST_AFTER_S;
    checked at most every CHECK_EVERY_S (per fetch, never per message)."""

    def __init__(self) -> None:
        self._checked = 0.0
        self._lost_since: float | None = None
        self.reason: str | None = None

    def check(self, consumer: Any, fetched: bool) -> str | None:
        now = time.monotonic()
        if fetched and self.reason is None and self._lost_since is None:
            return None
        if now - self._checked < CHECK_EVERY_S:
            return self.reason
        self._checked = now
        lost = unfetchable_brokers(consumer)
        if not lost:
            self._lost_since, self.reason = None, None
            return None
        if self._lost_since is None:
            self._lost_since = now
        if now - self._lost_since >= LOST_AFTER_S:
            self.reason = (f"lost the connection to {', '.join(lost)} after start "
                           "(fetches fail; retrying)")
        return self.reason
