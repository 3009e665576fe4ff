"""Where a source sends what it decoded: dead letters, counters, sink buffers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from streamer.core import deadletter
from streamer.core.ack import Ack
from streamer.core.batch import BatchBuffer, Origin, Piece
from streamer.core.deadletter import BadInput, DeadLetters
from streamer.core.ndjson import Decoded
from streamer.observability.metrics import SourceStats


class _BufferSet:
    """The sink buffers one fanout feeds, and how many emits are using them."""

    __slots__ = ("blocks", "buffers", "retired", "users")

    def __init__(self, buffers: list[BatchBuffer]) -> None:
        self.buffers = buffers
        # a block only if no sink wants it split again (TD sends lines one by one)
        self.blocks = all(buffer.whole_blocks for buffer in buffers)
        self.users = 0
        self.retired: asyncio.Event | None = None  # set once replaced and unused


class Fanout:
    """A source's way out: each decoded chunk to every sink buffer it feeds (with the
    chunk's Ack), its bad input to the dead letters, its counts to the source's stats."""

    def __init__(self, source: str, buffers: list[BatchBuffer], dead_letters: DeadLetters,
                 stats: SourceStats) -> None:
        self.source = source
        self._targets = _BufferSet(list(buffers))
        self._dead_letters = dead_letters
        self.stats = stats

    @property
    def buffers(self) -> list[BatchBuffer]:
        return self._targets.buffers

    def rewire(self, buffers: list[BatchBuffer]) -> Awaitable[object]:
        """Send the next chunks to `buffers` (a config reload).  Returns what to
        await before closing a buffer that was dropped: the emits that started
        before the rewire, which still put into the old buffers, have ended."""
        old, self._targets = self._targets, _BufferSet(list(buffers))
        old.retired = asyncio.Event()
        if not old.users:
            old.retired.set()
        return old.retired.wait()

    def reject(self, bad: list[BadInput], origin: str) -> None:
        """The one way a source dead-letters what it could not take."""
        if not bad:
            return
        self._dead_letters.write(self.source,
                                 [deadletter.entry(self.source, origin, b) for b in bad])
        self.stats.rejected += len(bad)

    async def emit(self, decoded: Decoded, track: Callable[[int], Ack], origin: Origin) -> None:
        """Send one decoded chunk to every sink.

        `track(n)` makes the chunk's Ack for n sinks; a chunk without valid
        records is finished at once (its bad input is already dead-lettered).
        """
        self.reject(decoded.bad, origin.stream)
        count = len(decoded.raws)
        targets = self._targets  # the buffers this chunk goes to, even across a rewire
        ack = track(len(targets.buffers) if count else 0)
        if not count:
            return
        self.stats.records += count
        piece = Piece(None, decoded.lines(targets.blocks), ack, origin)
        targets.users += 1
        try:
            for buffer in targets.buffers:
                await buffer.put(piece)
        finally:
            targets.users -= 1
            if not targets.users and targets.retired is not None:
                targets.retired.set()
