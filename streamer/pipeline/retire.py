"""The one way sources and sinks leave the pipeline: at a stop (all of them) and
when a reload removes or replaces some.  The order is contracts.py's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass

from streamer.core.batch import BatchBuffer
from streamer.core.deadletter import DeadLetters
from streamer.pipeline.contracts import Sink, Source

log = logging.getLogger("streamer.pipeline")


class StateNotSaved(Exception):
    """Checkpoints (or the dead-letter sync before them) that could not be written
    when sources were retired; each was logged with its error."""

    def __init__(self, count: int) -> None:
        super().__init__(f"stopped with {count} checkpoint(s) not saved: a restart reads "
                         "again from the last checkpoint saved")


@dataclass(frozen=True)
class RunningSource:
    source: Source
    task: asyncio.Task


@dataclass(frozen=True)
class RunningSink:
    sink: Sink
    task: asyncio.Task
    buffer: BatchBuffer


async def retire(sources: list[RunningSource], sinks: list[RunningSink],
                 dead_letters: DeadLetters, *, drain: bool = True,
                 detached: Iterable[Awaitable[object]] = ()) -> None:
    """Stop `sources` and drain `sinks`, which the caller took out of the graph.

    `detached` (with `drain` only): what must end before the sinks' buffers
    close besides the sources' reading -- at a reload, the emits that the
    sources which stay began before they were rewired, and that still put into
    those buffers.  `drain=False` (a forced or failed stop), or a cancellation:
    the tasks are cancelled instead of awaited and `after_drain` is skipped; the
    checkpoints saved then still cover only acknowledged data.  Raises what a
    draining sink failed with.
    """
    try:
        if drain:
            await asyncio.gather(_stop_reading(sources), *detached)
            for running in sinks:
                running.buffer.close()  # the sink delivers what it holds, then ends
            await asyncio.gather(*(running.task for running in sinks))
            await _after_drain(sources)
    finally:
        tasks = [r.task for r in (*sources, *sinks) if not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for running in sources:
            running.source.finish()
        failures = _save_state(sources, dead_letters)
        for component in (*(r.source for r in sources), *(r.sink for r in sinks)):
            component.close()
        if failures:
            raise StateNotSaved(len(failures)) from failures[0]


def _save_state(sources: list[RunningSource], dead_letters: DeadLetters) -> list[Exception]:
    """Sync the dead letters, then save every source's checkpoint: one that
    cannot be written does not keep the others from being saved."""
    try:
        # a checkpoint may pass a bad line only once its dead letter is on disk
        dead_letters.sync()
    except OSError as exc:
        log.error("dead letters could not be synced; no checkpoint moves: %s", exc)
        return [exc]
    failures: list[Exception] = []
    for running in sources:
        try:
            running.source.save_checkpoint()
        except Exception as exc:
            log.error("source %s: checkpoint not saved: %s", running.source.name, exc)
            failures.append(exc)
    return failures


async def _stop_reading(sources: list[RunningSource]) -> None:
    for running in sources:
        running.task.cancel()
    results = await asyncio.gather(*(r.task for r in sources), return_exceptions=True)
    for running, result in zip(sources, results, strict=True):
        if isinstance(result, Exception):
            log.error("source %s failed: %s", running.source.name, result)


async def _after_drain(sources: list[RunningSource]) -> None:
    """Network sources commit what the drain acknowledged and close their
    connections (each bounded by its own timeouts)."""
    results = await asyncio.gather(*(r.source.after_drain() for r in sources),
                                   return_exceptions=True)
    for running, result in zip(sources, results, strict=True):
        if isinstance(result, Exception):
            log.error("source %s failed to close: %s", running.source.name, result)
