"""Kafka source: a consumer group member that commits only acknowledged offsets.

Fetches come in batches (`getmany`); the messages of one partition in one fetch
are read as one block of values (fetch.py: no object per message), passed on in
chunks of about `max_partition_fetch_bytes`: a chunk's values are joined into one
NDJSON block and decoded in bulk (a value may hold several lines; null values
are skipped).  Bad lines go
to the dead-letter file with the origin ``kafka:TOPIC/PARTITION`` and the
message offset.

Offsets (see offsets.py): auto-commit is off; the committed offset of a
partition is the end of its longest prefix of batches acknowledged by every
sink, committed every `checkpoint_interval_s`, on revocation and at a clean
stop, each commit bounded by `commit_timeout_s`.  A partition with
`max_in_flight_batches` unacknowledged batches is paused until acks come back;
a full sink buffer also stops the fetch loop (the consumer keeps its group
membership through the heartbeat task for up to `max_poll_interval_ms`).
On a rebalance the acknowledged offsets of the revoked partitions are
committed, their in-flight batches are not: whoever owns them next (this
instance or another) reads them again -- at-least-once, except into
exactly-once stage sinks: they are told of every revocation (they finish what
is completing and abandon open files of the partition) and every assignment
(they read the partition's fence from the ledger in the stage) before this
source commits or fetches (Fences.revoked / assigned).

Each chunk carries its partition as stream key (`topic/partition`) and the
offset after it, for exactly-once stage sinks: a chunk that spans one of
their fences (the end of what they staged from the partition) is cut there.
Its epoch is the rebalance count when it was read: a sink drops chunks read
before their partition's last revocation or assignment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streamer.core.batch import Origin
from streamer.core.retry import Backoff
from streamer.observability.metrics import Readings, SourceStats
from streamer.pipeline.context import Context
from streamer.sources.fanout import Fanout
from streamer.sources.kafka.bootstrap import first_to_answer
from streamer.sources.kafka.config import KafkaSourceConfig, connection_options
from streamer.sources.kafka.diagnose import bootstrap_failure
from streamer.sources.kafka.fetch import FetchedBlock, blocks_of, install_block_reader
from streamer.sources.kafka.lag import EndOffsets
from streamer.sources.kafka.liveness import ASSIGNORS, BrokerWatch, fetch_failure
from streamer.sources.kafka.offsets import PartitionOffsets
from streamer.sources.kafka.rebalance import Listener, Rebalancing, label, labels
from streamer.sources.kafka.resets import POSITION_ERRORS, reposition
from streamer.sources.payloads import decode_payloads

log = logging.getLogger("streamer.source.kafka")

POLL_TIMEOUT_MS = 1000
START_BACKOFF_INITIAL_S = 1.0
START_BACKOFF_MAX_S = 30.0
FETCH_BACKOFF_S = 1.0  # a failed fetch is retried within this (no escalation)
# loop turns from a drained buffer to aiokafka's fetch request being written: the
# consumed-future's callback, the wake-up of its fetcher task, the task itself
FETCHER_TURNS = 3


def origin_of(tp: TopicPartition) -> str:
    """What dead letters name as the origin of a partition's messages."""
    return f"kafka:{tp.topic}/{tp.partition}"


class KafkaCommitFailed(Exception):
    """The last offset commit failed (retried at the next checkpoint interval)."""


class KafkaSource(Rebalancing):
    def __init__(self, name: str, cfg: KafkaSourceConfig, fanout: Fanout,
                 context: Context) -> None:
        self.name = name
        self._cfg = cfg
        self._fanout = fanout
        self._fences = context.fences
        self._client_id = cfg.client_id or f"streamer-{context.instance_id}"
        self.book = PartitionOffsets(cfg.max_in_flight_batches, self._resume)
        self._consumer: AIOKafkaConsumer | None = None
        self._commit_task: asyncio.Task | None = None
        self._commit_error: str | None = None  # the last commit failed: why
        self._generation = 0  # bumped by every revocation and assignment
        # clear from a revocation until the next assignment's sinks have their fences
        self._settled = asyncio.Event()
        self._settled.set()
        self.commits = {"ok": 0, "failed": 0}
        self.rebalances = 0
        self.offsets_lost: dict[TopicPartition, int] = {}  # out of range: skipped unread
        self._ends = EndOffsets(name)  # for the lag while nothing is fetched
        self._join_started: float | None = None  # a (re)join runs since then
        self.join_seconds: float | None = None  # how long the last one took
        self._metrics = context.metrics
        self._metrics.watch(name, self._readings, owner="source")

    # -- consumer ------------------------------------------------------------------
    def _consumer_options(self) -> dict[str, Any]:
        cfg = self._cfg
        return {
            **connection_options(cfg),
            "group_id": cfg.group_id,
            "client_id": self._client_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "none",  # resets.py: start_from, and a reset said aloud
            "isolation_level": cfg.isolation_level,
            "max_poll_records": cfg.max_poll_records,
            "fetch_max_wait_ms": cfg.fetch_max_wait_ms,
            "max_partition_fetch_bytes": cfg.max_partition_fetch_bytes,
            "session_timeout_ms": cfg.session_timeout_ms,
            "heartbeat_interval_ms": cfg.heartbeat_interval_ms,
            "rebalance_timeout_ms": cfg.rebalance_timeout_ms,
            "max_poll_interval_ms": cfg.max_poll_interval_ms,
            "metadata_max_age_ms": cfg.metadata_max_age_ms,
            "partition_assignment_strategy": ASSIGNORS,
        }

    async def _start(self) -> AIOKafkaConsumer:
        """Start a consumer, retrying until a bootstrap server answers."""
        backoff = Backoff(START_BACKOFF_INITIAL_S, START_BACKOFF_MAX_S)
        cfg = self._cfg
        keep_name = cfg.security_protocol in ("SSL", "SASL_SSL") and cfg.ssl_check_hostname
        while True:
            options = self._consumer_options()
            options["bootstrap_servers"] = await first_to_answer(cfg.bootstrap_servers,
                                                                 keep_name)
            consumer = AIOKafkaConsumer(**options)
            stats = self._metrics.source(self.name)
            try:
                await consumer.start()
                install_block_reader(consumer, self._cfg.max_poll_records)
                stats.unreachable = None
                return consumer
            except KafkaError as exc:
                with contextlib.suppress(KafkaError):
                    await consumer.stop()
                delay = backoff.failure()
                # aiokafka says only "Unable to bootstrap": ask each server why
                reasons = await bootstrap_failure(self._cfg)
                servers = ",".join(self._cfg.bootstrap_servers)
                stats.unreachable = (f"cannot reach {reasons}" if reasons else
                                     f"cannot reach {servers} ({type(exc).__name__})")
                log.warning("kafka source %s: %s; retrying in %.1fs",
                            self.name, stats.unreachable, delay)
                await backoff.wait()

    # -- lifecycle -----------------------------------------------------------------
    async def run(self) -> None:
        cfg = self._cfg
        self._consumer = consumer = await self._start()
        listener = Listener(self)
        self._join_started = time.monotonic()
        if cfg.topics:
            consumer.subscribe(topics=cfg.topics, listener=listener)
        else:
            consumer.subscribe(pattern=cfg.topic_pattern, listener=listener)
        log.info("kafka source %s: joining group %s as %s (%s)", self.name, cfg.group_id,
                 self._client_id, ", ".join(cfg.topics) or f"pattern {cfg.topic_pattern}")
        ends = asyncio.create_task(self._ends.run(consumer), name=f"kafka-lag:{self.name}")
        try:
            await self._fetch(consumer)
        finally:
            ends.cancel()

    async def _fetch(self, consumer: AIOKafkaConsumer) -> None:
        cfg = self._cfg
        fetch_backoff = Backoff(FETCH_BACKOFF_S, FETCH_BACKOFF_S)
        brokers = BrokerWatch()
        stats = self._metrics.source(self.name)
        while True:
            try:
                fetched = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS,
                                                 max_records=cfg.max_poll_records)
            except POSITION_ERRORS as exc:
                await reposition(consumer, exc, self.name, cfg.start_from, self.offsets_lost)
                continue
            except KafkaError as exc:
                log.warning("kafka source %s: fetch failed: %s", self.name, exc)
                brokers.failed(fetch_failure(exc, cfg.group_id))
                self._watch(brokers, consumer, stats, False)
                fetch_backoff.failure()
                await fetch_backoff.wait()
                continue
            self._watch(brokers, consumer, stats, bool(fetched))
            # aiokafka sends a broker no fetch while records it fetched from it wait
            # in its buffers; `getmany` took them all, so give its fetcher the turns
            # it needs to send the next request: the broker answers while this fetch
            # is decoded (without them fetching and decoding take turns)
            for _ in range(FETCHER_TURNS):
                await asyncio.sleep(0)
            generation = self._generation
            if not self._settled.is_set():  # a hand-off runs: emit once sinks are ready
                await self._settled.wait()
            for tp, messages in fetched.items():
                for block in blocks_of(messages):
                    if self._generation != generation:
                        # a rebalance ran since the fetch: positions went back to the
                        # committed offsets, so the rest of this fetch is read again
                        break
                    await self._emit(tp, block, generation)

    def _watch(self, brokers: BrokerWatch, consumer: AIOKafkaConsumer, stats: SourceStats,
               fetched: bool) -> None:
        """/health's `unreachable` while the brokers to fetch from are lost."""
        before = brokers.reason
        stats.unreachable = brokers.check(consumer, fetched)
        if stats.unreachable is not None and before is None:
            log.warning("kafka source %s: %s", self.name, stats.unreachable)
        elif before is not None and stats.unreachable is None:
            log.info("kafka source %s: brokers answer again; fetching", self.name)

    async def _emit(self, tp: TopicPartition, block: FetchedBlock, generation: int) -> None:
        key = f"{tp.topic}/{tp.partition}"
        first, end = block.first, block.last + 1
        try:  # a scan for None would cost as much as this sum
            size: int | None = sum(map(len, block.values))
        except TypeError:  # tombstones (None) carry no record
            block = block.without_tombstones()
            size = None
        for fence in self._fences.of(self.name, key):
            if first < fence < end:  # a replay reaching past a stage's fence: cut there
                head, block = block.split(block.index_of(fence))
                await self._emit_sized(tp, key, head, first, fence, generation)
                first, size = fence, None
        await self._emit_sized(tp, key, block, first, end, generation, size)

    async def _emit_sized(self, tp: TopicPartition, key: str, block: FetchedBlock,
                          first: int, end: int, generation: int,
                          size: int | None = None) -> None:
        """Offsets [first, end) in chunks of about `max_partition_fetch_bytes` of
        values, as a file is read: a broker may send a partition more than that in
        one fetch (tansu does), and a chunk of several batches' size costs the sink's
        batch buffer more to cut than chunks of one batch or less."""
        if size is None:
            size = sum(map(len, block.values))
        self._fanout.stats.bytes += size
        parts = -(-size // self._cfg.max_partition_fetch_bytes)
        if parts > 1:
            step = -(-len(block.values) // parts)
            while len(block.values) > step:
                head, block = block.split(step)
                await self._emit_chunk(tp, key, head, first, block.first, generation)
                first = block.first
        await self._emit_chunk(tp, key, block, first, end, generation)

    async def _emit_chunk(self, tp: TopicPartition, key: str, block: FetchedBlock,
                          first: int, end: int, generation: int) -> None:
        """Messages of offsets [first, end) as one chunk (none once a rebalance ran
        since the fetch: the rest of it is read again)."""
        if self._generation != generation:
            return
        decoded = decode_payloads(block.values, block.offset_of, self._cfg.max_line_bytes)
        # kept: a stop delivers the whole chunk, so its commit covers it (a chunk cut
        # by the stop would be read again whole: its delivered part twice)
        await self._fanout.emit(decoded, self.book.tracker(tp, first, end),
                                Origin(self.name, origin_of(tp), first, key, end,
                                       generation), kept=True)
        if self.book.should_pause(tp):
            try:
                self._consumer.pause(tp)
            except KafkaError:  # revoked meanwhile
                if (state := self.book.partitions.get(tp)) is not None:
                    state.paused = False

    def _resume(self, tp: TopicPartition) -> None:
        if self._consumer is not None:
            # KafkaError: revoked meanwhile, and a new assignment starts unpaused
            with contextlib.suppress(KafkaError):
                self._consumer.resume(tp)

    # -- commits -------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Periodic: commit acknowledged offsets in the background (one at a time).
        While the last commit failed it raises, so that the checkpoint loop shows it
        (/health, metrics); the next commit is started all the same."""
        if self._consumer is None:
            return
        if not (self._commit_task and not self._commit_task.done()):
            offsets = self.book.pending()
            if offsets:
                self._commit_task = asyncio.get_running_loop().create_task(
                    self._commit(offsets), name=f"kafka-commit:{self.name}")
            else:
                self._commit_error = None  # nothing left that failed to commit
        if self._commit_error is not None:
            raise KafkaCommitFailed(self._commit_error)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> bool:
        consumer = self._consumer
        if consumer is None:
            return False
        try:
            await asyncio.wait_for(consumer.commit(offsets), self._cfg.commit_timeout_s)
        except (KafkaError, TimeoutError) as exc:
            self.commits["failed"] += 1
            self._commit_error = f"commit of {labels(offsets)} failed (" + type(
                exc).__name__ + (f": {exc}" if str(exc) else "") + ")"
            log.warning("kafka source %s: %s; the next one retries", self.name,
                        self._commit_error)
            return False
        self._commit_error = None
        self.commits["ok"] += 1
        self.book.mark_committed(offsets)
        log.debug("kafka source %s: committed %s", self.name,
                  {label(tp): off for tp, off in offsets.items()})
        return True

    async def _settle_commit(self) -> None:
        task = self._commit_task
        if task is not None and not task.done():
            await asyncio.wait([task])  # bounded by commit_timeout_s

    async def after_drain(self) -> None:
        """Clean stop, every sink drained: commit the last acknowledgements, leave."""
        consumer = self._consumer
        if consumer is None:
            return
        await self._settle_commit()
        offsets = self.book.pending()
        if offsets:
            await self._commit(offsets)
        self._consumer = None
        try:
            await asyncio.wait_for(consumer.stop(), self._cfg.commit_timeout_s)
        except (KafkaError, TimeoutError) as exc:
            log.warning("kafka source %s: leaving the group failed: %r", self.name, exc)
        log.info("kafka source %s: committed %s and left group %s", self.name,
                 {label(tp): off for tp, off in offsets.items()} or "nothing new",
                 self._cfg.group_id)

    def finish(self) -> None:
        """Forced or failed stop: nothing async is possible; uncommitted batches
        are read again after the restart."""
        self._consumer = None

    def close(self) -> None:
        self._metrics.unwatch(self.name, self._readings, owner="source")
        self._metrics.source(self.name).unreachable = None  # a reload may replace it

    def _readings(self) -> Readings:
        """Per partition and per source, read at scrape time (families.py)."""
        out: dict[str | tuple[str, ...], float] = {}
        consumer = self._consumer
        assigned = consumer.assignment() if consumer is not None else set()
        for tp, state in list(self.book.partitions.items()):
            labels = (tp.topic, str(tp.partition))
            out["kafka_in_flight_batches", *labels] = state.in_flight
            out["kafka_committed_offset", *labels] = state.committed
            out["kafka_paused", *labels] = 1 if state.paused else 0
            out["kafka_offsets_lost", *labels] = self.offsets_lost.get(tp, 0)
            high = self._ends.end(consumer, tp) if consumer is not None and tp in assigned \
                else None
            if high is not None:
                out["kafka_lag", *labels] = max(high - state.committed, 0)
        for outcome, count in self.commits.items():
            out["kafka_commits", outcome] = count
        out["kafka_rebalances"] = self.rebalances
        if self.join_seconds is not None:
            out["kafka_join_seconds"] = self.join_seconds
        return out
