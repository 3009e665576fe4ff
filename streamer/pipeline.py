"""Sources -> bounded per-sink batch buffers -> sinks, and its ordered stop."""

from __future__ import annotations

import asyncio
import logging

from streamer.batch import BatchBuffer
from streamer.config import Config
from streamer.context import Context
from streamer.deadletter import DeadLetters
from streamer.metrics import Metrics
from streamer.sinks.stage import StageSink
from streamer.sinks.td import TdSink
from streamer.sources.file import FileSource
from streamer.sources.kafka import KafkaSource
from streamer.sources.outlet import Outlet
from streamer.sources.socket import SocketSource
from streamer.sources.stdin import StdinSource

log = logging.getLogger("streamer.pipeline")

# config `type` -> class; each is built as Class(name, cfg, outlet|buffer, context)
SOURCES = {"file": FileSource, "stdin": StdinSource, "socket": SocketSource,
           "kafka": KafkaSource}
SINKS = {"stage": StageSink, "td": TdSink}


class Pipeline:
    def __init__(self, cfg: Config, metrics: Metrics) -> None:
        self._cfg = cfg
        self.metrics = metrics
        self.dead_letters = DeadLetters(cfg.data_path / "dead_letter")
        self.context = Context(metrics, self.dead_letters, cfg.data_path, cfg.instance_id)
        self.buffers = {
            name: BatchBuffer(
                max_records=sink.batch.max_records, max_bytes=sink.batch.max_bytes,
                linger_s=sink.batch.linger_ms / 1000, max_batches=sink.buffer.max_batches,
                drop_newest=sink.buffer.when_full == "drop_newest", stats=metrics.sink(name))
            for name, sink in cfg.sinks.items()}
        self.sinks = {name: self._build_sink(name, sink) for name, sink in cfg.sinks.items()}
        self.sources = {name: self._build_source(name, src) for name, src in cfg.sources.items()}
        self._source_tasks: dict[str, asyncio.Task] = {}
        self.started = asyncio.Event()  # every source and sink task is running

    def _build_sink(self, name: str, cfg):
        return SINKS[cfg.type](name, cfg, self.buffers[name], self.context)

    def _build_source(self, name: str, cfg):
        outputs = self._cfg.source_outputs(name)
        if not outputs:
            log.warning("source %s feeds no sink; its records are read and discarded", name)
        outlet = Outlet(name, [self.buffers[s] for s in outputs], self.dead_letters,
                        self.metrics.source(name))
        return SOURCES[cfg.type](name, cfg, outlet, self.context)

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

    async def _run_source(self, name: str) -> None:
        await self.sources[name].run()
        self.metrics.source(name).finished = True
        log.info("source %s finished", name)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until every source finished (finite input) or `stop` is set, then
        drain: buffers are closed, sinks deliver what they hold, checkpoints are
        saved.  Cancelling this task abandons the drain (a forced stop); the
        checkpoints saved then still cover only acknowledged data."""
        sink_tasks = [asyncio.create_task(sink.run(), name=f"sink:{name}")
                      for name, sink in self.sinks.items()]
        self._source_tasks = {name: asyncio.create_task(self._run_source(name),
                                                        name=f"source:{name}")
                              for name in self.sources}
        checkpointer = asyncio.create_task(self._checkpoint_loop(), name="checkpoints")
        self.started.set()
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            sources_done = asyncio.gather(*self._source_tasks.values())
            # on a stop the sources are cancelled and their failures logged by
            # _stop_sources; the gathered result is not wanted then
            sources_done.add_done_callback(lambda f: f.cancelled() or f.exception())
            pending = {sources_done, stopper, *sink_tasks}
            while True:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                failed = [t for t in done if t is not stopper and t.exception()]
                if failed:
                    raise failed[0].exception()
                if sources_done in done or stopper in done:
                    break
            await self._stop_sources()
            for buffer in self.buffers.values():
                buffer.close()
            await asyncio.gather(*sink_tasks)
            await self._after_drain()
        finally:
            stopper.cancel()
            checkpointer.cancel()
            for task in (*self._source_tasks.values(), *sink_tasks):
                task.cancel()
            await asyncio.gather(*self._source_tasks.values(), *sink_tasks, checkpointer,
                                 return_exceptions=True)
            for source in self.sources.values():
                source.finish()
            self.save_checkpoints()
            self.dead_letters.close()

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
