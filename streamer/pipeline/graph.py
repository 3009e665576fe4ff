"""Sources -> bounded per-sink batch buffers -> sinks, and its ordered stop.

A config reload (`apply`, see streamer/reload.py) changes the running graph in
place: sinks and sources that changed or were removed stop (a sink's buffer
leaves every outlet, is closed and drained through the old sink), then the
changed and added ones start; the others keep running untouched.
"""

from __future__ import annotations

import asyncio
import importlib
import logging

from streamer.config.root import Config
from streamer.core.batch import BatchBuffer
from streamer.core.deadletter import DeadLetters
from streamer.datadir.layout import DataDir
from streamer.observability.metrics import Metrics
from streamer.pipeline.context import Context
from streamer.pipeline.plan import Plan
from streamer.sources.outlet import Outlet
from streamer.supervisor.shards import Shard

log = logging.getLogger("streamer.pipeline")

# config `type` -> "module:Class"; each is built as Class(name, cfg, outlet|buffer,
# context).  A module is imported when a config uses it: aiokafka, aiohttp and
# DuckDB take a tenth of a second and tens of MiB each, in every worker.
SOURCES = {"file": "streamer.sources.file.source:FileSource",
           "stdin": "streamer.sources.stdin.source:StdinSource",
           "socket": "streamer.sources.socket.source:SocketSource",
           "kafka": "streamer.sources.kafka.source:KafkaSource"}
SINKS = {"stage": "streamer.sinks.stage.sink:StageSink", "td": "streamer.sinks.td.sink:TdSink"}


def _component(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


class Pipeline:
    def __init__(self, cfg: Config, metrics: Metrics, shard: Shard | None = None) -> None:
        self._cfg = cfg
        self.metrics = metrics
        data_dir = DataDir(cfg.data_path, None if shard is None else shard.index)
        self.dead_letters = DeadLetters(data_dir.dead_letters)
        self.context = Context(metrics, self.dead_letters, data_dir, cfg.instance_id,
                               shard or Shard())
        self.buffers = {name: self._build_buffer(name) for name in cfg.sinks}
        self.sinks = {name: self._build_sink(name) for name in cfg.sinks}
        self._outlets: dict[str, Outlet] = {}
        self.sources = {name: self._build_source(name) for name in cfg.sources}
        self._source_tasks: dict[str, asyncio.Task] = {}
        self._sink_tasks: dict[str, asyncio.Task] = {}
        self._retiring: set[asyncio.Task] = set()  # old sinks draining after a reload
        self._retiring_buffers: list[BatchBuffer] = []
        self._reconfiguring: asyncio.Task | None = None
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
            drop_newest=sink.buffer.when_full == "drop_newest", stats=self.metrics.sink(name))

    def _build_sink(self, name: str):
        cfg = self._cfg.sinks[name]
        return _component(SINKS[cfg.type])(name, cfg, self.buffers[name], self.context)

    def _outputs(self, source: str) -> list[BatchBuffer]:
        outputs = self._cfg.source_outputs(source)
        if not outputs:
            log.warning("source %s feeds no sink; its records are read and discarded", source)
        return [self.buffers[s] for s in outputs]

    def _build_source(self, name: str):
        cfg = self._cfg.sources[name]
        outlet = Outlet(name, self._outputs(name), self.dead_letters, self.metrics.source(name))
        self._outlets[name] = outlet
        return _component(SOURCES[cfg.type])(name, cfg, outlet, self.context)

    def source_states(self) -> dict[str, str]:
        return {name: ("finished" if self.metrics.source(name).finished else "running")
                for name in self.sources}

    def save_checkpoints(self) -> None:
        # a checkpoint may pass a bad line only once its dead letter is on disk
        self.dead_letters.sync()
        for source in self.sources.values():
            source.save_checkpoint()

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
        drain: buffers are closed, sinks deliver what they hold, checkpoints are
        saved.  Cancelling this task abandons the drain (a forced stop); the
        checkpoints saved then still cover only acknowledged data."""
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
            await self._stop_sources()
            if self._reconfiguring is not None:
                # a reload in progress: its old sinks drain, its new sinks start
                # (and drain what was already routed to them), no new source starts
                await self._reconfiguring
            for buffer in (*self.buffers.values(), *self._retiring_buffers):
                buffer.close()
            await asyncio.gather(*self._sink_tasks.values(), *self._retiring)
            await self._after_drain()
        finally:
            self._stopping = True
            stopper.cancel()
            checkpointer.cancel()
            tasks = [*self._source_tasks.values(), *self._sink_tasks.values(), *self._retiring]
            if self._reconfiguring is not None:
                tasks.append(self._reconfiguring)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, checkpointer, return_exceptions=True)
            for source in self.sources.values():
                source.finish()
            self.save_checkpoints()
            self.dead_letters.close()

    def _watched(self) -> list[asyncio.Task]:
        tasks = [*self._source_tasks.values(), *self._sink_tasks.values(), *self._retiring]
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
            self._retiring = {t for t in self._retiring if not t.done()}
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

    async def _after_drain(self) -> None:
        """Clean stop only: network sources commit what the drain acknowledged and
        close their connections (each bounded by its own timeouts)."""
        hooks = {name: source.after_drain() for name, source in self.sources.items()}
        results = await asyncio.gather(*hooks.values(), return_exceptions=True)
        for name, result in zip(hooks, results, strict=True):
            if isinstance(result, Exception):
                log.error("source %s failed to close: %s", name, result)

    async def _stop_sources(self) -> None:
        for task in self._source_tasks.values():
            task.cancel()
        results = await asyncio.gather(*self._source_tasks.values(), return_exceptions=True)
        for name, result in zip(self._source_tasks, results, strict=True):
            if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
                log.error("source %s failed: %s", name, result)

    # -- config reload -------------------------------------------------------------
    async def apply(self, plan: Plan) -> None:
        """Apply a reload plan; returns once replaced sinks have drained and the new
        components run.  The work belongs to the pipeline: cancelling the caller
        does not interrupt it, and a stop waits for it."""
        previous = self._reconfiguring
        if previous is not None:
            if not previous.done():
                raise RuntimeError("a reload is already being applied")
            self._retiring.add(previous)  # the supervisor still sees how it ended
        self._reconfiguring = asyncio.create_task(self._reconfigure(plan), name="reconfigure")
        self._changed.set()
        await asyncio.shield(self._reconfiguring)

    async def _reconfigure(self, plan: Plan) -> None:
        self._cfg = plan.config
        sinks, sources = plan.sinks, plan.sources
        # sinks that stop leave the outlets at once; their new versions get new buffers
        old_buffers = [self.buffers.pop(name) for name in sinks.stopping]
        self._retiring_buffers.extend(old_buffers)
        old_sinks = [self._sink_tasks.pop(name) for name in sinks.stopping]
        self._retiring.update(old_sinks)
        for name in sinks.starting:
            self.buffers[name] = self._build_buffer(name)
        stopping = []
        for name in sources.stopping:
            task = self._source_tasks.pop(name)
            task.cancel()  # now, so that no stop of the pipeline can miss it
            stopping.append(self._stop_source(name, task))
        # emits that began before the rewire still put into the old buffers: wait
        # for them (and for the stopping sources) before closing those buffers
        rewired = [outlet.rewire(self._outputs(name)) for name, outlet in self._outlets.items()
                   if name not in sources.stopping]
        await asyncio.gather(*stopping, *rewired)
        for buffer in old_buffers:
            buffer.close()  # the old sink delivers what it holds, then ends
        if old_sinks:
            await asyncio.wait(old_sinks)
        self._retiring_buffers = [b for b in self._retiring_buffers if b not in old_buffers]
        for name in sinks.removed:
            self.sinks.pop(name, None)
            self.metrics.gauges.pop(name, None)
        for name in sinks.starting:  # also during a stop: they drain what reached them
            self.sinks[name] = self._build_sink(name)
            self._start_sink(name)
        if not self._stopping:
            for name in sources.starting:
                self.sources[name] = self._build_source(name)
                self._start_source(name)
        self._changed.set()

    async def _stop_source(self, name: str, task: asyncio.Task) -> None:
        """Stop reading; acknowledged positions are committed or checkpointed (what
        is still in flight is read again by the next version: at-least-once)."""
        source = self.sources[name]
        result = (await asyncio.gather(task, return_exceptions=True))[0]
        if isinstance(result, Exception):
            log.error("source %s failed: %s", name, result)
        try:
            await source.after_drain()
        except Exception as exc:
            log.error("source %s failed to close: %s", name, exc)
        source.finish()
        self.dead_letters.sync()
        source.save_checkpoint()
        collector = getattr(source, "collector", None)
        if collector is not None:
            self.metrics.registry.unregister(collector)
        del self.sources[name], self._outlets[name]
        log.info("source %s stopped for the reload", name)
