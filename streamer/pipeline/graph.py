"""Sources -> bounded per-sink batch buffers -> sinks, supervised until a stop.

Each source and sink is built from its config `type` (registry.py), called
through its contract (contracts.py) and retired by the one ordered path of
retire.py, at a stop and at a reload alike.  A config reload (`apply`; the plan
is plan.py's) changes the running graph in place: sinks and sources that
changed or were removed are retired (a sink's buffer leaves every fanout, is
closed and drained through the old sink), then the changed and added ones
start; the others keep running untouched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace

from streamer.config.root import Config
from streamer.core.batch import BatchBuffer
from streamer.core.deadletter import DeadLetters
from streamer.datadir.layout import DataDir
from streamer.observability.log_limit import limit_group
from streamer.observability.metrics import Metrics, SourceStats
from streamer.observability.progress import finite_run
from streamer.pipeline.context import Context
from streamer.pipeline.contracts import Sink, Source
from streamer.pipeline.plan import Plan
from streamer.pipeline.registry import sink_class, source_class
from streamer.pipeline.retire import RunningSink, RunningSource, retire
from streamer.sources.fanout import Fanout
from streamer.supervisor.shards import Shard

log = logging.getLogger("streamer.pipeline")

Retiring = tuple[list[RunningSource], list[RunningSink]]
DEAD_LETTERS_CHECKPOINT = "dead_letters"  # the sync every checkpoint waits for


class Pipeline:
    def __init__(self, cfg: Config, metrics: Metrics, shard: Shard | None = None) -> None:
        self._cfg = cfg
        self.metrics = metrics
        data_dir = DataDir(cfg.data_path, None if shard is None else shard.index)
        self.dead_letters = DeadLetters(data_dir.dead_letters)
        self.context = Context(metrics, self.dead_letters, data_dir, cfg.instance_id,
                               shard or Shard(), stage_dirs=cfg.local_stage_dirs,
                               finite=finite_run(cfg))
        self.buffers = {name: self._build_buffer(name) for name in cfg.sinks}
        self.sinks: dict[str, Sink] = {name: self._build_sink(name) for name in cfg.sinks}
        self._fanouts: dict[str, Fanout] = {}
        self.sources: dict[str, Source] = {name: self._build_source(name)
                                           for name in cfg.sources}
        self._source_tasks: dict[str, asyncio.Task] = {}
        self._sink_tasks: dict[str, asyncio.Task] = {}
        self._reconfiguring: asyncio.Task | None = None
        self._ended_reloads: set[asyncio.Task] = set()  # the supervisor sees how they ended
        self._changed = asyncio.Event()  # tasks were added: the supervisor looks again
        self._stopping = False
        self.started = asyncio.Event()  # every source and sink task is running

    @property
    def config(self) -> Config:
        """The config in force (the last one applied by a reload)."""
        return self._cfg

    @property
    def running(self) -> bool:
        """Started and not stopping: a reload may be applied."""
        return self.started.is_set() and not self._stopping

    def _build_buffer(self, name: str) -> BatchBuffer:
        sink = self._cfg.sinks[name]
        return BatchBuffer(
            max_records=sink.batch.max_records, max_bytes=sink.batch.max_bytes,
            linger_s=sink.batch.linger_ms / 1000, max_batches=sink.buffer.max_batches,
            drop_newest=sink.buffer.when_full == "drop_newest", stats=self.metrics.sink(name),
            whole_blocks=sink_class(sink.type).takes_blocks(sink),
            whole_pieces=bool(getattr(sink, "exactly_once", False)))

    def _build_sink(self, name: str) -> Sink:
        cfg = self._cfg.sinks[name]
        context = replace(self.context, longest_record=self._cfg.longest_input(name)[1])
        return sink_class(cfg.type)(name, cfg, self.buffers[name], context)

    def _outputs(self, source: str) -> list[BatchBuffer]:
        outputs = self._cfg.source_outputs(source)
        if not outputs:
            log.warning("source %s feeds no sink; its records are read and discarded", source)
        return [self.buffers[s] for s in outputs]

    def _build_source(self, name: str) -> Source:
        cfg = self._cfg.sources[name]
        fanout = Fanout(name, self._outputs(name), self.dead_letters, self.metrics.source(name))
        self._fanouts[name] = fanout
        return source_class(cfg.type)(name, cfg, fanout, self.context)

    def source_states(self) -> dict[str, str]:
        return {name: _source_state(self.metrics.source(name)) for name in self.sources}

    def save_checkpoints(self) -> None:
        """One round of the checkpoint loop.  A write that fails (a full or
        read-only disk, an I/O error) is logged, counted and shown in /health, and
        retried next round: checkpointing never stops, and a checkpoint that cannot
        be written only stays behind (a restart reads more again)."""
        # a checkpoint may pass a bad line only once its dead letter is on disk
        if not self._saved(DEAD_LETTERS_CHECKPOINT, self.dead_letters.sync):
            return
        for name, source in list(self.sources.items()):
            self._saved(name, source.save_checkpoint)
        for gone in self.metrics.checkpoints.keys() - {DEAD_LETTERS_CHECKPOINT, *self.sources}:
            del self.metrics.checkpoints[gone]  # a source a reload removed

    def _saved(self, name: str, save: Callable[[], None]) -> bool:
        stats = self.metrics.checkpoint(name)
        try:
            save()
        except Exception as exc:  # any failure: the loop must go on
            stats.failed(f"{type(exc).__name__}: {exc}")
            # repeats are counted by the log handler (log_limit.py), per checkpoint
            log.warning("checkpoint %s not saved (last saved %.1fs ago): %s; retrying every "
                        "%.1fs", name, time.monotonic() - stats.last_saved, stats.last_error,
                        self._cfg.checkpoint_interval_s, extra=limit_group(f"checkpoint:{name}"))
            return False
        if stats.failing_since is not None:
            log.info("checkpoint %s saved again after %.1fs of failures", name,
                     time.monotonic() - stats.failing_since)
        stats.saved()
        return True

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.checkpoint_interval_s)
            self.save_checkpoints()

    def _start_sink(self, name: str) -> None:
        self._sink_tasks[name] = asyncio.create_task(self.sinks[name].run(), name=f"sink:{name}")

    def _start_source(self, name: str) -> None:
        self._source_tasks[name] = asyncio.create_task(self._run_source(name),
                                                       name=f"source:{name}")

    async def _run_source(self, name: str) -> None:
        self.metrics.source(name).finished = False
        await self.sources[name].run()
        self.metrics.source(name).finished = True
        log.info("source %s finished", name)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until every source finished (finite input) or `stop` is set, then
        retire everything: sinks deliver what they hold, checkpoints are saved.
        Cancelling this task abandons the drain (a forced stop); the checkpoints
        saved then still cover only acknowledged data."""
        for name in self.sinks:
            self._start_sink(name)
        for name in self.sources:
            self._start_source(name)
        checkpointer = asyncio.create_task(self._checkpoint_loop(), name="checkpoints")
        self.started.set()
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            await self._supervise(stopper)
            self._stopping = True
            for task in self._source_tasks.values():
                task.cancel()  # reading stops now, also while a reload in progress ends
            if self._reconfiguring is not None:
                # its old sinks drain, its new sinks start (and drain what was
                # already routed to them), no new source starts
                await self._reconfiguring
            await self._retire(self._hand_over(self.sources, self.sinks))
        finally:
            self._stopping = True
            stopper.cancel()
            checkpointer.cancel()
            reloads = [*self._ended_reloads, *filter(None, [self._reconfiguring])]
            for task in reloads:
                task.cancel()  # a reload still retires what it took over
            await asyncio.gather(*reloads, checkpointer, return_exceptions=True)
            # a forced or failed stop: what is left is retired without a drain
            await self._retire(self._hand_over(self.sources, self.sinks), drain=False)
            self.dead_letters.close()

    def _watched(self) -> list[asyncio.Task]:
        tasks = [*self._source_tasks.values(), *self._sink_tasks.values(), *self._ended_reloads]
        if self._reconfiguring is not None:
            tasks.append(self._reconfiguring)
        return tasks

    async def _supervise(self, stopper: asyncio.Task) -> None:
        """Return on `stop`, or once every source finished; raise what a source, a
        sink or a reload failed with."""
        while True:
            for task in self._watched():
                if task.done() and not task.cancelled() and task.exception():
                    raise task.exception()
            self._ended_reloads.clear()
            if self._reconfiguring is not None and self._reconfiguring.done():
                self._reconfiguring = None
            if stopper.done():
                return
            if self._reconfiguring is None and all(t.done() for t in self._source_tasks.values()):
                return
            self._changed.clear()
            changed = asyncio.create_task(self._changed.wait(), name="pipeline-changed")
            pending = {t for t in self._watched() if not t.done()}
            try:
                await asyncio.wait({stopper, changed, *pending},
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()

    # -- retirement: stop and reload -------------------------------------------------
    def _hand_over(self, sources: Iterable[str], sinks: Iterable[str]) -> Retiring:
        """Running components leave the graph for a retirement: their tasks are
        no longer supervised, their buffers no longer built on.  The objects stay
        until it ends, so checkpoints and /health still cover them meanwhile."""
        return ([RunningSource(self.sources[name], self._source_tasks.pop(name))
                 for name in list(sources) if name in self._source_tasks],
                [RunningSink(self.sinks[name], self._sink_tasks.pop(name),
                             self.buffers.pop(name))
                 for name in list(sinks) if name in self._sink_tasks])

    async def _retire(self, retiring: Retiring, *, drain: bool = True,
                      detached: Iterable[Awaitable[object]] = ()) -> None:
        sources, sinks = retiring
        try:
            await retire(sources, sinks, self.dead_letters, drain=drain, detached=detached)
        finally:
            for running in sources:
                del self.sources[running.source.name], self._fanouts[running.source.name]
            for running in sinks:
                del self.sinks[running.sink.name]

    # -- config reload -------------------------------------------------------------
    async def apply(self, plan: Plan) -> None:
        """Apply a reload plan; returns once replaced sinks have drained and the new
        components run.  The work belongs to the pipeline: cancelling the caller
        does not interrupt it, and a stop waits for it."""
        previous = self._reconfiguring
        if previous is not None:
            if not previous.done():
                raise RuntimeError("a reload is already being applied")
            self._ended_reloads.add(previous)
        self._reconfiguring = asyncio.create_task(self._reconfigure(plan), name="reconfigure")
        self._changed.set()
        await asyncio.shield(self._reconfiguring)

    async def _reconfigure(self, plan: Plan) -> None:
        self._cfg = plan.config
        sinks, sources = plan.sinks, plan.sources
        retiring = self._hand_over(sources.stopping, sinks.stopping)
        for name in sinks.starting:  # the new versions get new buffers at once
            self.buffers[name] = self._build_buffer(name)
        # the sources that stay feed the new buffers from now on; emits that began
        # before still put into the old ones, which close only once they ended
        rewired = [fanout.rewire(self._outputs(name)) for name, fanout in self._fanouts.items()
                   if name not in sources.stopping]
        await self._retire(retiring, detached=rewired)
        for name in sources.stopping:
            log.info("source %s stopped for the reload", name)
        for name in sinks.starting:  # also during a stop: they drain what reached them
            self.sinks[name] = self._build_sink(name)
            self._start_sink(name)
        if not self._stopping:
            for name in sources.starting:
                self.sources[name] = self._build_source(name)
                self._start_source(name)
        self._changed.set()


def _source_state(stats: SourceStats) -> str:
    if stats.finished:
        return "finished"
    return "running" if stats.unreachable is None else "unreachable"
