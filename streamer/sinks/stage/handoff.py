"""Exactly-once stage sinks: streams that move between instances (Kafka partitions
on a rebalance), told by their source through Fences (core/fences.py).

An assignment raises each stream's fence to the highest end in the ledger in the
stage (ledger.py; any instance's files), before the source emits anything of it.
A revocation abandons the streams' open files (never completed: their records are
the next owner's) and waits for files already completing, whose markers the next
owner must see.  Chunks read before a stream's last revocation or assignment are
stale (Origin.epoch): the sink neither writes nor acknowledges them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from streamer.core.fences import Fences
from streamer.sinks.stage.streams import Stream

if TYPE_CHECKING:
    from streamer.sinks.stage.sink import StageSink

log = logging.getLogger("streamer.sink.stage")


class StreamHandoffs:
    """The hand-off half of StageSink (a mixin: it shares the sink's state)."""

    def _init_handoffs(self: StageSink, fences: Fences) -> None:
        self._shared_fences = fences
        self._moving: set[str] = set()  # sources whose streams move (markers written)
        self._epochs: dict[tuple[str, str], int] = {}  # older chunks are stale
        self._last_marker: dict[Stream, str] = {}  # this run's last marker per stream
        self._writing = asyncio.Lock()  # a revocation waits for the batch being written

    async def assigned(self: StageSink, source: str, keys: list[str], epoch: int) -> None:
        """Before the source fetches from them: each stream's fence is the highest
        end in the ledger (any instance's) or in the journal, whichever is higher."""
        self._moving.add(source)
        streams = [(source, key) for key in keys]
        ends = await asyncio.gather(*(self._ledger.fence(s) for s in streams))
        for stream, end in zip(streams, ends, strict=True):
            self._epochs[stream] = epoch
            if end is not None and end > self._fences.get(stream, -1):
                self._fences[stream] = end
                self._shared_fences.set(self.name, source, stream[1], end)
                log.info("stage sink %s: %s %s staged up to %d (ledger)", self.name, source,
                         stream[1], end)

    async def revoked(self: StageSink, source: str, keys: list[str], epoch: int) -> None:
        """Open files of the streams are abandoned (their records are the next
        owner's to stage), files already completing finish (their markers are
        written before this returns, so the next owner's fence covers them)."""
        self._moving.add(source)
        async with self._writing:
            for key in keys:
                stream = (source, key)
                self._epochs[stream] = epoch
                file = self._streams.pop(stream) if self._streams is not None else None
                if file is not None:
                    log.info("stage sink %s: %s %s revoked: abandoning open file %s/%s "
                             "(%d records)", self.name, source, key, file.window.id,
                             file.name, file.record_count)
                    await self._store.discard(file)
                    self._encoder.drop(file)
                    self._stats.count("records_handed_over",
                                      sum(w.count for w in file.written_batches))
                    self.windows.abandon(file.window)
            last = self._last_completion
        if last is not None and not last.done():
            await asyncio.wait([last])
