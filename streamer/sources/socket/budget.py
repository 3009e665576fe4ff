"""The bound on the bytes a socket source's connections hold together (queued
reads, the read being decoded, unfinished frames and lines): `max_buffered_bytes`.

Past it, a connection that reads stops reading (TCP pushes back), except one,
the *owner*, which may finish its frame: otherwise many half-received frames
could hold the whole budget and wait for each other.  Owners take turns, one
complete frame or line each; below the bound every held-back connection reads
again.  A source so holds at most the bound + one frame + one read per
connection."""

from __future__ import annotations

from typing import Protocol


class Reader(Protocol):
    held: int

    def resume(self) -> None: ...


class ReadBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffered = 0  # what every connection holds; they add and release it
        self._held_back: set[Reader] = set()  # not reading: the bound is reached
        self._owner: Reader | None = None  # reads on past the bound (one frame)

    def forget(self, conn: Reader) -> None:
        """A connection is gone (its bytes were released)."""
        self._held_back.discard(conn)
        if self._owner is conn:
            self._owner = None
        self.rebalance()

    def may_read(self, conn: Reader) -> bool:
        """Whether `conn` may go on reading; past the bound only the owner may
        (the first to ask becomes it)."""
        if self.buffered < self.limit or conn is self._owner:
            return True
        if self._owner is None:
            self._owner = conn
            return True
        self._held_back.add(conn)
        return False

    def frame_done(self, conn: Reader) -> None:
        """The owner completed a frame or line: past the bound, the next one
        finishes its own (owners take turns, none is starved)."""
        if conn is self._owner and self.buffered >= self.limit and self._held_back:
            self._owner = None

    def rebalance(self) -> None:
        """Held bytes went down: below the bound every held-back connection reads
        again; above it, a lost or finished owner is replaced by the held-back
        connection holding the most (the closest to a complete frame)."""
        if self.buffered < self.limit:
            self._owner = None
            if self._held_back:
                held_back, self._held_back = self._held_back, set()
                for conn in held_back:
                    conn.resume()
        elif self._owner is None and self._held_back:
            owner = max(self._held_back, key=lambda c: c.held)
            self._held_back.discard(owner)
            self._owner = owner
            owner.resume()
