"""Where a source sends what it decoded: dead letters, counters, sink buffers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from streamer.core import deadletter
from streamer.core.ack import Ack
from streamer.core.batch import BatchBuffer, Origin, Piece
from streamer.core.deadletter import BadInput, DeadLetters
from streamer.core.ndjson import Decoded
from streamer.observability.log_limit import LIMIT_GROUP
from streamer.observability.logs import mask_secrets, rate_limiter
from streamer.observability.metrics import SourceStats

log = logging.getLogger("streamer.source.rejected")
REJECTED = "source %s: rejected the line at %s %s: %s; dead-lettered: %s"
DEAD_LETTER_RETRY_S = 0.1  # first wait for a disk that did not take dead letters
DEAD_LETTER_RETRY_MAX_S = 2.0


class _Excerpt:
    """A bad line's excerpt, made only when its log record is written (most are
    counted by the rate limiter, never written)."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __str__(self) -> str:
        return deadletter.excerpt(self.raw, mask_secrets)


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
        # a group of the log limiter of its own: one source's storm never hides another's
        self._log_group = {LIMIT_GROUP: source}
        self._log_key = (log.name, logging.WARNING, REJECTED, source)

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

    def reject(self, bad: list[BadInput], origin: str) -> bool:
        """The one way a source dead-letters what it could not take; False when the
        disk did not take the entries (kept, see `wait_for_dead_letters`)."""
        written = self._dead_letters.write(
            self.source, [deadletter.entry(self.source, origin, b) for b in bad])
        self.stats.rejected += len(bad)
        self._log_rejected(bad, origin)
        return written

    async def wait_for_dead_letters(self) -> None:
        """Hold the source back until its dead letters are written: its input
        must not be acknowledged (a socket's ack) or read on without bound while
        they exist only in memory.  /health shows the failure meanwhile (the
        dead-letter sync before each checkpoint fails)."""
        delay = DEAD_LETTER_RETRY_S
        try:
            self._dead_letters.flush()
            return
        except OSError as exc:
            log.warning("dead letters of %s cannot be written (%s); reading waits until "
                        "they are", self.source, exc, extra=self._log_group)
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, DEAD_LETTER_RETRY_MAX_S)
            try:
                self._dead_letters.flush()
            except OSError:
                continue
            log.info("dead letters of %s written again; reading goes on", self.source)
            return

    def _log_rejected(self, bad: list[BadInput], origin: str) -> None:
        """A WARNING per line, rate-limited: the lines the limiter would suppress are
        counted by it without a log record each (a storm of bad input stays cheap)."""
        if not log.isEnabledFor(logging.WARNING):
            return
        limiter = rate_limiter()
        shown = len(bad) if limiter is None else min(len(bad), limiter.room(self._log_key))
        for item in bad[:shown]:
            log.warning(REJECTED, *self._rejected_args(item, origin), extra=self._log_group)
        if shown < len(bad):
            limiter.count_suppressed(self._log_key, len(bad) - shown, REJECTED,
                                     self._rejected_args(bad[-1], origin))

    def _rejected_args(self, item: BadInput, origin: str) -> tuple:
        where = (f"offset {item.offset} (byte {item.payload_position} of its message)"
                 if item.payload_position else f"offset {item.offset}")
        return self.source, origin, where, item.reason, _Excerpt(item.raw)

    async def emit(self, decoded: Decoded, track: Callable[[int], Ack], origin: Origin,
                   kept: bool = False) -> None:
        """Send one decoded chunk to every sink.

        `track(n)` makes the chunk's Ack for n sinks; a chunk without valid
        records is finished at once (its bad input is already dead-lettered).
        `kept`: a stop that cancels the emit while a buffer is full still leaves
        the chunk in every buffer (see BatchBuffer.put), for the drain to deliver.
        """
        if decoded.bad and not self.reject(decoded.bad, origin.stream):
            await self.wait_for_dead_letters()
        count = len(decoded.raws)
        targets = self._targets  # the buffers this chunk goes to, even across a rewire
        ack = track(len(targets.buffers) if count else 0)
        if not count:
            return
        self.stats.records += count
        piece = Piece(None, decoded.lines(targets.blocks), ack, origin)
        targets.users += 1
        try:
            for i, buffer in enumerate(targets.buffers):
                try:
                    await buffer.put(piece, kept)
                except asyncio.CancelledError:
                    if kept:
                        for later in targets.buffers[i + 1:]:
                            later.add_now(piece)
                    raise
        finally:
            targets.users -= 1
            if not targets.users and targets.retired is not None:
                targets.retired.set()
