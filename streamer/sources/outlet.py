"""Where a source sends what it decoded: dead letters, counters, sink buffers."""

from __future__ import annotations

from collections.abc import Callable

from streamer import deadletter
from streamer.ack import Ack
from streamer.batch import BatchBuffer, Origin, Piece
from streamer.codec import BadLine, Decoded
from streamer.deadletter import DeadLetters
from streamer.metrics import SourceStats


class Outlet:
    def __init__(self, source: str, buffers: list[BatchBuffer], dead_letters: DeadLetters,
                 stats: SourceStats) -> None:
        self.source = source
        self._buffers = buffers
        self._dead_letters = dead_letters
        self.stats = stats

    def reject(self, bad: list[BadLine], path: str | None) -> None:
        if not bad:
            return
        self._dead_letters.write(self.source, [
            deadletter.entry(component=self.source, reason=b.reason, raw=b.raw, path=path,
                             offset=b.offset)
            for b in bad])
        self.stats.rejected += len(bad)

    async def emit(self, decoded: Decoded, track: Callable[[int], Ack], origin: Origin) -> None:
        """Send one decoded chunk to every sink.

        `track(n)` makes the chunk's Ack for n sinks; a chunk without valid
        records is finished at once (its bad lines are already dead-lettered).
        """
        self.reject(decoded.bad, origin.path)
        count = len(decoded.records)
        ack = track(len(self._buffers) if count else 0)
        if not count:
            return
        self.stats.records += count
        piece = Piece(decoded.records, decoded.raws, decoded.nbytes, ack, origin, decoded.plain)
        for buffer in self._buffers:
            await buffer.put(piece)
