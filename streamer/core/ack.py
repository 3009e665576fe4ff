"""End-to-end acknowledgement.

A source chunk gets one `Ack` whose count is the number of sinks it is sent to.
Every sink releases it once the chunk is delivered, dead-lettered durably or
dropped by an explicit `drop_newest` policy.  When the count reaches zero the
chunk is finished and its source may move on (`OrderedCommitter`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class Ack:
    __slots__ = ("_on_done", "_pending")

    def __init__(self, pending: int, on_done: Callable[[], None] | None = None) -> None:
        self._pending = pending
        self._on_done = on_done
        if pending == 0 and on_done is not None:
            on_done()

    @property
    def pending(self) -> int:
        return self._pending

    def retain(self, count: int = 1) -> None:
        """A sink split the chunk into more pieces; each piece releases once."""
        self._pending += count

    def release(self) -> None:
        self._pending -= 1
        if self._pending == 0 and self._on_done is not None:
            callback, self._on_done = self._on_done, None
            callback()


class OrderedCommitter:
    """Advances a position only over a contiguous run of finished chunks.

    Chunks of one stream (a file, a Kafka partition) finish out of order when
    sinks run concurrently; the committed position is the end of the longest
    prefix of finished chunks, so a crash never skips an unfinished one.
    """

    __slots__ = ("_committed", "_on_advance", "_pending")

    def __init__(self, position: int,
                 on_advance: Callable[[int], None] | None = None) -> None:
        """`on_advance(committed)` is called each time the committed position moves."""
        self._committed = position
        self._pending: deque[list] = deque()  # [end_position, finished]
        self._on_advance = on_advance

    @property
    def committed(self) -> int:
        return self._committed

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def track(self, end_position: int, sinks: int) -> Ack:
        entry = [end_position, False]
        self._pending.append(entry)
        return Ack(sinks, lambda: self._finish(entry))

    def _finish(self, entry: list) -> None:
        entry[1] = True
        advanced = False
        while self._pending and self._pending[0][1]:
            self._committed = self._pending.popleft()[0]
            advanced = True
        if advanced and self._on_advance is not None:
            self._on_advance(self._committed)
