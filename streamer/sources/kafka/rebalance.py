"""Revocations and assignments of a KafkaSource's partitions (a mixin of KafkaSource:
it shares the source's state), and the listener aiokafka calls them through."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

if TYPE_CHECKING:
    from streamer.sources.kafka.source import KafkaSource

log = logging.getLogger("streamer.source.kafka")


def label(tp: TopicPartition) -> str:
    return f"{tp.topic}[{tp.partition}]"


def labels(tps: Any) -> str:
    return ", ".join(sorted(map(label, tps))) or "none"


def keys_of(tps: Any) -> list[str]:
    """The stream keys of partitions (what chunks carry as Origin.key)."""
    return [f"{tp.topic}/{tp.partition}" for tp in tps]


class Rebalancing:
    """The rebalance half of KafkaSource."""

    async def on_revoked(self: KafkaSource, revoked: set[TopicPartition]) -> None:
        self._generation += 1
        self._settled.clear()
        self.rebalances += 1
        if self._join_started is None:
            self._join_started = time.monotonic()
        # exactly-once sinks first: what they complete now is committed below
        await self._fences.revoked(self.name, keys_of(revoked), self._generation)
        await self._settle_commit()
        offsets = self.book.pending(revoked)
        if offsets:
            await self._commit(offsets)
        dropped = sum(s.in_flight for tp in revoked if (s := self.book.partitions.get(tp)))
        self.book.drop(revoked)
        log.info("kafka source %s: revoked %s (committed %s; %d in-flight batches left "
                 "uncommitted)", self.name, labels(revoked),
                 {label(tp): off for tp, off in offsets.items()} or "nothing new", dropped)

    async def on_assigned(self: KafkaSource, assigned: set[TopicPartition]) -> None:
        self._generation += 1
        self._settled.clear()
        try:  # before anything fetched is emitted: exactly-once sinks read the ledger
            await self._fences.assigned(self.name, keys_of(assigned), self._generation)
        finally:
            self._settled.set()
        if self._join_started is not None:
            self.join_seconds = time.monotonic() - self._join_started
            self._join_started = None
            log.info("kafka source %s: joined group %s in %.2fs", self.name,
                     self._cfg.group_id, self.join_seconds)
        log.info("kafka source %s: assigned %s", self.name, labels(assigned))


class Listener(ConsumerRebalanceListener):
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._source.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._source.on_assigned(set(assigned))
