"""One batch encoded ahead: while the event loop writes a batch's rows into the stage
file, the native encoder's thread already runs the next batch's query.

Without it the encoder's thread waited, between two queries, for the loop to write
the last batch's rows (7 MB for 20,000 records, about 8 ms into the page cache) and
to take the next batch: 0.2-0.4 s of a 1M-record run (docs/performance.md).  The next
batch is taken from the buffer (with what waits behind it, as `coalesce` takes it)
once the last batch's query is done and before its rows are written; its query is
started only when it goes whole into the file it will be written to (the records the
open file has room for, or a new file's): the records of each query are then exactly
those `StageSink._write_batch` hands the encoder, in the same order, and the batch is
written, acknowledged and journaled after the last one as before.  At most one batch
is held here and one query runs at a time; a batch whose query was not started is
encoded when it is written.
"""

from __future__ import annotations

import asyncio

from streamer.core.batch import Batch, BatchBuffer
from streamer.core.lines import Lines
from streamer.sinks.stage.csv_native import Encoded
from streamer.sinks.stage.encoding import BatchEncoder
from streamer.sinks.stage.store.local import StagedFile

# a DuckDB query costs ~3 ms besides its rows: a sink that is behind takes the
# batches already waiting as one write (and one query)
COALESCE_RECORDS = 20_000


def coalesce(batch: Batch, buffer: BatchBuffer) -> Batch:
    """`batch` with the batches already waiting behind it, up to COALESCE_RECORDS."""
    while batch.count < COALESCE_RECORDS:
        more = buffer.get_ready()
        if more is None:
            break
        batch.absorb(more)
    return batch


class Lookahead:
    def __init__(self, encoder: BatchEncoder, buffer: BatchBuffer, enabled: bool) -> None:
        self._encoder = encoder
        self._buffer = buffer
        self._enabled = enabled and encoder.starts_early
        self._batch: Batch | None = None
        self._segments: list[Lines] = []
        self._started: asyncio.Future | None = None

    def take(self, room: int) -> None:
        """Called once a batch's rows are encoded, before they are written: the next
        batch, if one waits, is taken, and its query started if it goes whole into
        a file with `room` records left (the file may yet close: a new one has more)."""
        if not self._enabled or self._batch is not None:
            return
        batch = self._buffer.get_ready()
        if batch is None:
            return
        self._batch = coalesce(batch, self._buffer)
        if self._batch.count <= room:
            segments = [piece.lines for piece in self._batch.pieces]
            self._started = self._encoder.start(segments)
            if self._started is not None:
                self._segments = segments

    def next_batch(self) -> Batch | None:
        """The batch taken ahead (the next one to write), if any."""
        batch, self._batch = self._batch, None
        return batch

    async def encode(self, segments: list[Lines], file: StagedFile) -> Encoded:
        """`segments` encoded: by the query started ahead if it was for them."""
        started, planned = self._started, self._segments
        self._started, self._segments = None, []
        if started is not None and not _same(segments, planned):
            # never expected (the room rule); its rows are dropped, not written
            await asyncio.gather(started, return_exceptions=True)
            started = None
        return await self._encoder.encode(segments, file, started)

    def close(self) -> None:
        """A query started ahead and never awaited (the sink stopped on an error):
        no one will read its result or its exception."""
        if self._started is not None:
            self._started.cancel()
            self._started = None


def _same(segments: list[Lines], planned: list[Lines]) -> bool:
    return len(segments) == len(planned) and all(
        a is b for a, b in zip(segments, planned, strict=True))
