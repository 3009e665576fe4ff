"""Batches and the per-sink batch buffer.

Sources emit `Piece`s: the records decoded from one read, with the raw bytes
they arrived as and the `Ack` of the chunk they came from.  Each sink owns a
`BatchBuffer`, which is both its batcher and its bounded queue:

* a batch is sealed when it reaches `max_records` or `max_bytes`, when
  `linger_s` has passed since its first record, or at end of input;
* at most `max_batches` sealed batches wait; a full buffer blocks `put`
  (backpressure reaches the source) or, with `drop_newest`, drops and counts.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson

from streamer.core.ack import Ack
from streamer.core.lines import Lines
from streamer.observability.metrics import SinkStats


@dataclass(slots=True, frozen=True)
class Origin:
    """Where a chunk came from, for dead letters: a source, the input it read (a
    dead letter's `origin`, see deadletter.py) and the offset of the chunk in it.

    A replayable source (a file) also sets `key`, its stream's identity that
    survives a rename (a new one for a truncated file), and `end`, the position
    just after the chunk: an exactly-once stage sink skips a replayed chunk that
    ends at or before what it already staged.  None / -1: cannot be replayed.
    `epoch`: a Kafka source's rebalance count when it read the chunk (a chunk
    read before its partition was revoked is not written by such a sink)."""

    source: str
    stream: str
    offset: int
    key: str | None = None
    end: int = -1
    epoch: int = 0


@dataclass(slots=True)
class Piece:
    """Validated records as the bytes they arrived as (`Lines`).  Sources
    validate and keep no dicts (most sinks want only the bytes, and dicts take
    ten times the memory); `records` decodes again on demand."""

    decoded: list[dict[str, Any]] | None
    lines: Lines
    ack: Ack
    origin: Origin

    @property
    def raws(self) -> list[bytes]:
        return self.lines.raws

    @property
    def count(self) -> int:
        return self.lines.count

    @property
    def nbytes(self) -> int:
        return self.lines.nbytes

    @property
    def records(self) -> list[dict[str, Any]]:
        if self.decoded is None:
            self.decoded = list(map(orjson.loads, self.lines.raws))
        return self.decoded

    def split(self, count: int) -> tuple[Piece, Piece]:
        self.ack.retain()
        decoded = self.decoded
        head, tail = self.lines.split(count)
        return (Piece(None if decoded is None else decoded[:count], head, self.ack, self.origin),
                Piece(None if decoded is None else decoded[count:], tail, self.ack, self.origin))


class Batch:
    __slots__ = ("count", "created", "nbytes", "pieces")

    def __init__(self) -> None:
        self.pieces: list[Piece] = []
        self.count = 0
        self.nbytes = 0
        self.created = 0.0

    def add(self, piece: Piece) -> None:
        if not self.pieces:
            self.created = time.monotonic()
        self.pieces.append(piece)
        self.count += piece.count
        self.nbytes += piece.nbytes

    def absorb(self, other: Batch) -> None:
        """Take `other`'s pieces: one write (one native encode) for both."""
        for piece in other.pieces:
            self.add(piece)
        self.created = min(self.created, other.created)

    def iter_records(self):
        for piece in self.pieces:
            yield from piece.records

    def release(self) -> None:
        """This sink is finished with every record of the batch."""
        for piece in self.pieces:
            piece.ack.release()


TIMEOUT = object()


class BatchBuffer:
    def __init__(
        self,
        *,
        max_records: int,
        max_bytes: int,
        linger_s: float,
        max_batches: int,
        drop_newest: bool,
        stats: SinkStats,
        whole_blocks: bool = False,
        whole_pieces: bool = False,
    ) -> None:
        self._whole_blocks = whole_blocks
        # never split a piece between batches (one ack and one end per piece: the
        # exactly-once stage sink): a batch is sealed after the piece that fills it
        self._whole_pieces = whole_pieces
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._linger_s = linger_s
        self._max_batches = max_batches
        self._drop_newest = drop_newest
        self._stats = stats
        self._ready: deque[Batch] = deque()
        self._open = Batch()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._linger_due = False
        self._nonempty = asyncio.Event()
        self._space = asyncio.Event()

    @property
    def whole_blocks(self) -> bool:
        """Whether the sink takes a read's block as it is (core.lines.Lines; the stage
        sink's native encoder does); else pieces hold lists of lines."""
        return self._whole_blocks

    # -- producer side -------------------------------------------------------
    async def put(self, piece: Piece, kept: bool = False) -> None:
        """Add `piece`, waiting for room.  `kept`: a piece a stop must not cut --
        cancelled while it waits, what is left of it is added at once, over
        `max_batches` (memory it already holds), so the drain delivers all of it
        (stdin cannot be read again; a file chunk cut in two is read again whole)."""
        if not piece.count:
            piece.ack.release()
            return
        rest: Piece | None = piece
        while rest is not None:
            take = self._fits(rest)
            if take:
                rest = self._add(rest, take)
                continue
            # the open batch is full: it must be sealed before anything else fits
            if len(self._ready) < self._max_batches:
                self._seal()
            elif self._drop_newest:
                self._stats.received += rest.count
                self._stats.dropped += rest.count
                rest.ack.release()
                return
            else:
                self._space.clear()
                try:
                    await self._space.wait()
                except asyncio.CancelledError:
                    if kept:
                        self.add_now(rest)
                    raise

    def add_now(self, piece: Piece) -> None:
        """Add `piece` without waiting for room (see `put`'s `kept`)."""
        rest: Piece | None = piece
        while rest is not None:
            take = self._fits(rest)
            if take:
                rest = self._add(rest, take)
            else:
                self._seal()

    def close(self) -> None:
        """End of input: seal what is open; `get` returns None once drained."""
        self._closed = True
        self._nonempty.set()

    # -- consumer side -------------------------------------------------------
    async def get(self, timeout: float | None = None) -> Batch | object | None:
        """The next sealed batch; None at end of input; TIMEOUT after `timeout`."""
        while not self._ready:
            if self._closed:
                if not self._open.count:
                    return None
                self._seal()
                break
            self._nonempty.clear()
            if timeout is None:
                await self._nonempty.wait()
            else:
                try:
                    async with asyncio.timeout(timeout):
                        await self._nonempty.wait()
                except TimeoutError:
                    return TIMEOUT
        return self.get_ready()

    def get_ready(self) -> Batch | None:
        """A sealed batch if one waits, else None (never waits, never seals an
        open batch that still has room)."""
        if not self._ready:
            return None
        batch = self._ready.popleft()
        if self._open_is_full():
            self._seal()
        self._space.set()
        return batch

    @property
    def depth(self) -> int:
        return len(self._ready) + (1 if self._open.count else 0)

    @property
    def buffered_bytes(self) -> int:
        return sum(b.nbytes for b in self._ready) + self._open.nbytes

    @property
    def oldest_age_s(self) -> float:
        first = self._ready[0] if self._ready else self._open
        return time.monotonic() - first.created if first.count else 0.0

    # -- internals -------------------------------------------------------------
    def _open_is_full(self) -> bool:
        return bool(self._open.count) and (
            self._open.count >= self._max_records or self._open.nbytes >= self._max_bytes
            or self._linger_due)

    def _fits(self, piece: Piece) -> int:
        """How many of the piece's records fit in the open batch (0: it is full)."""
        take = min(piece.count, self._max_records - self._open.count)
        if self._whole_pieces:  # a batch takes whole pieces until it is full
            return 0 if self._open_is_full() else piece.count
        if take and piece.nbytes > self._max_bytes - self._open.nbytes:
            take = piece.lines.fitting(self._max_bytes - self._open.nbytes, take)
            if take == 0 and not self._open.count:
                take = 1  # a record larger than max_bytes travels alone
        return take

    def _add(self, piece: Piece, take: int) -> Piece | None:
        """Add `take` records of `piece` to the open batch; return the rest."""
        rest = None
        if take < piece.count:
            piece, rest = piece.split(take)
        if not self._open.count and self._linger_s > 0:
            self._timer = asyncio.get_running_loop().call_later(
                self._linger_s, self._on_linger)
        self._open.add(piece)
        self._stats.received += piece.count
        full = self._open_is_full() or self._linger_s <= 0 or rest is not None
        if full and len(self._ready) < self._max_batches:
            self._seal()
        return rest

    def _on_linger(self) -> None:
        self._timer = None
        self._linger_due = True
        if self._open.count and len(self._ready) < self._max_batches:
            self._seal()
        # else: sealed by get() as soon as a slot frees up

    def _seal(self) -> None:
        self._linger_due = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._open.count:
            self._ready.append(self._open)
            self._open = Batch()
            self._nonempty.set()
