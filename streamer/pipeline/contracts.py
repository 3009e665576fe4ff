"""What the pipeline calls on a source and on a sink, when, and what each call
must guarantee.

A source reads its input and emits decoded chunks through its `Fanout`, each
with the `Ack` that tells it when every sink is done with the chunk; a sink
takes batches from its `BatchBuffer` and delivers or dead-letters them,
releasing their acks.  The pipeline builds one of each per config entry (the
classes are in registry.py), runs `run()` as a task, and retires it (retire.py)
at a stop or when a reload removes or replaces it, always in this order:

1. the sources' `run()` tasks are cancelled: reading stops (at a reload, the
   sources that stay stop feeding the retiring sinks);
2. the sinks' buffers are closed: each sink delivers what it holds, `run()` returns;
3. clean stop only: `Source.after_drain()`;
4. `Source.finish()`, the dead letters are synced, `Source.save_checkpoint()`;
5. `close()` of every retired source and sink.

A forced stop (second signal, deadline, a failed component) cancels 2 and
skips 3; 4 and 5 still run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from streamer.core.batch import BatchBuffer
    from streamer.pipeline.context import Context
    from streamer.sources.fanout import Fanout


class Source(Protocol):
    name: str

    def __init__(self, name: str, cfg: Any, fanout: Fanout, context: Context) -> None:
        """`cfg`: the source's config model (sources/<type>/config.py).  Starts no
        task: reading starts in `run`."""

    async def run(self) -> None:
        """Read and emit until the input ends (a finite source returns) or the task
        is cancelled (stop or reload).  On cancellation reading stops at once; what
        was emitted stays in the sinks' buffers and is delivered or read again."""

    async def after_drain(self) -> None:
        """Clean stop only, once `run` ended and the retiring sinks drained:
        acknowledge upstream what every sink acknowledged (Kafka commit, socket
        producer acks) and close connections, bounded by the source's own timeouts.
        An error is logged; the retirement goes on."""

    def finish(self) -> None:
        """Release what reading holds (open files, connections, the consumer) once
        `run` ended, cleanly or not.  Synchronous: it runs on a forced stop too."""

    def save_checkpoint(self) -> None:
        """Persist the position up to which every sink acknowledged every chunk,
        never beyond it: a crash then reads again what was in flight, and loses
        nothing.  Called every `checkpoint_interval_s` (after the dead letters were
        synced, so a checkpoint never passes a bad line that is not on disk) and
        once more when the source is retired, after `finish`.  Cheap when nothing
        moved."""

    def close(self) -> None:
        """Take back what the constructor registered in the process's `Metrics`
        (a Prometheus collector reading this object), so that a source a reload
        removed is no longer scraped.  Its counters (`Metrics.source`) stay: a
        source rebuilt under the same name continues them.  Called once, last."""


class Sink(Protocol):
    name: str

    def __init__(self, name: str, cfg: Any, buffer: BatchBuffer, context: Context) -> None:
        """`cfg`: the sink's config model (sinks/<type>/config.py); `buffer`: its
        input, already built and possibly already fed."""

    @classmethod
    def takes_blocks(cls, cfg: Any) -> bool:
        """Whether the sink built from `cfg` takes a read's block as it is
        (`core.lines.Lines` over one buffer) rather than a list of lines.  Asked
        before the sink exists: its buffer and the fanouts feeding it are built
        first (a reload rewires the fanouts while the previous version drains)."""

    async def run(self) -> None:
        """Take batches until the buffer is closed and empty; deliver or durably
        dead-letter every record and only then release its batch's ack (the
        source's checkpoint moves on it).  Returns once every batch taken is
        finished.  Cancelled on a forced stop: what it did not release is read
        again from the sources' checkpoints."""

    def close(self) -> None:
        """Take back what the constructor registered in `Metrics` (live gauges
        reading this object).  Its counters (`Metrics.sink`) stay: a sink rebuilt
        under the same name continues them.  Called once, after `run` ended."""
