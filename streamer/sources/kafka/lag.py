"""The end offsets of assigned partitions, asked of the brokers now and then.

aiokafka learns a partition's high watermark from fetch responses only: while the
sinks are stalled the partition is paused (or its fetched records wait to be
taken) and fetches nothing, so `highwater()` stays where the last fetch left it
and the lag it gives stops growing while producers go on.  Every
`REFRESH_S` the end offsets of every assigned partition are listed (one
ListOffsets request per broker, nothing consumed); the lag is measured from the
newer of the two.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger("streamer.source.kafka")

REFRESH_S = 5.0
REQUEST_TIMEOUT_S = 10.0


class EndOffsets:
    def __init__(self, source: str) -> None:
        self._source = source
        self.known: dict[TopicPartition, int] = {}

    def end(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
        """The newest end offset known for `tp`: the last fetch's or the last listing's."""
        fetched = consumer.highwater(tp)
        listed = self.known.get(tp)
        if fetched is None or listed is None:
            return listed if fetched is None else fetched
        return max(fetched, listed)

    async def run(self, consumer: AIOKafkaConsumer, interval_s: float = REFRESH_S) -> None:
        while True:
            await asyncio.sleep(interval_s)
            assigned = list(consumer.assignment())
            if not assigned:
                self.known = {}
                continue
            try:
                ends = await asyncio.wait_for(consumer.end_offsets(assigned),
                                              REQUEST_TIMEOUT_S)
            except (KafkaError, TimeoutError) as exc:  # the fetch loop says it aloud
                log.debug("kafka source %s: end offsets not listed: %r", self._source, exc)
                continue
            self.known = {tp: end for tp, end in ends.items() if end is not None}
