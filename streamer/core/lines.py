"""Records as the bytes they arrived as: NDJSON lines, in one of two shapes.

A read that held only good records stays the block it was read as (every
line ends with b"\\n"), and pieces of it are byte ranges of that one object:
the stage sink hands DuckDB those ranges as they are, and nothing holds a
Python object per record.  Anything else (a read with bad or blank lines, a
socket's or Kafka's frames) is a list of lines.  A sink that wants the lines
one by one (Treasure Data) gets them split from the block on first use.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from operator import methodcaller

NEWLINE = b"\n"


class Lines:
    """`count` records of `nbytes` bytes (newlines not counted), the longest
    `longest` bytes (at most: a range of a block keeps the block's figure)."""

    __slots__ = ("_block", "_end", "_raws", "_start", "count", "longest", "nbytes")

    def __init__(self, raws: list[bytes] | None, block: bytes, start: int, end: int,
                 count: int, nbytes: int, longest: int) -> None:
        self._raws = raws
        self._block = block  # b"" when the lines are only a list
        self._start = start
        self._end = end
        self.count = count
        self.nbytes = nbytes
        self.longest = longest

    @classmethod
    def of(cls, raws: list[bytes], nbytes: int | None = None,
           longest: int | None = None) -> Lines:
        """`nbytes` and `longest` when the caller knows them (an upper bound will
        do for `longest`)."""
        return cls(raws, b"", 0, 0, len(raws),
                   sum(map(len, raws)) if nbytes is None else nbytes,
                   max(map(len, raws), default=0) if longest is None else longest)

    @classmethod
    def of_block(cls, block: bytes, count: int, longest: int) -> Lines:
        """`block`: `count` lines, each ended by b"\\n"."""
        return cls(None, block, 0, len(block), count, len(block) - count, longest)

    @property
    def raws(self) -> list[bytes]:
        if self._raws is None:
            raws = self._block[self._start:self._end].split(NEWLINE)
            raws.pop()  # after the last newline
            self._raws = raws
        return self._raws

    def ndjson(self) -> Sequence[bytes | memoryview]:
        """Buffers that hold the lines, each ended by b"\\n", in order."""
        if self._block:
            return (memoryview(self._block)[self._start:self._end],)
        return (NEWLINE.join(self._raws), NEWLINE) if self._raws else ()

    def count_of(self, text: bytes) -> int:
        """How many times `text` occurs in the lines (C-level searches)."""
        if self._block:
            return self._block.count(text, self._start, self._end)
        return sum(map(methodcaller("count", text), self._raws))

    def contains(self, text: bytes) -> bool:
        """Whether `text` occurs in the lines (for one byte a memchr, several
        times faster than counting it)."""
        if self._block:
            return self._block.find(text, self._start, self._end) >= 0
        return any(map(methodcaller("__contains__", text), self._raws))

    def split(self, count: int) -> tuple[Lines, Lines]:
        """The first `count` records and the rest."""
        if not self._block:
            head = self._raws[:count]
            head_bytes = sum(map(len, head))
            return (Lines.of(head, head_bytes, self.longest),
                    Lines.of(self._raws[count:], self.nbytes - head_bytes, self.longest))
        cut = self._offset_after(count)
        head_bytes = cut - self._start - count
        head = Lines(None if self._raws is None else self._raws[:count], self._block,
                     self._start, cut, count, head_bytes, self.longest)
        tail = Lines(None if self._raws is None else self._raws[count:], self._block, cut,
                     self._end, self.count - count, self.nbytes - head_bytes, self.longest)
        return head, tail

    def fitting(self, max_bytes: int, limit: int) -> int:
        """How many of the first `limit` records take at most `max_bytes` (a
        block's count their newlines too)."""
        if not self._block:
            return bisect_right(list(accumulate(map(len, self._raws[:limit]))), max_bytes)
        last = self._block.rfind(NEWLINE, self._start, min(self._end, self._start + max_bytes))
        return 0 if last < 0 else min(limit, self._block.count(NEWLINE, self._start, last + 1))

    def _offset_after(self, count: int) -> int:
        """Offset just past the `count`-th line: a guess from the mean line
        length, corrected one newline at a time (a few steps)."""
        block, start = self._block, self._start
        if count <= 0:
            return start
        guess = start + (self._end - start) * count // self.count
        found = block.count(NEWLINE, start, guess)
        position = guess
        if found < count:
            for _ in range(count - found):
                position = block.index(NEWLINE, position, self._end) + 1
            return position
        for _ in range(found - count + 1):
            position = block.rindex(NEWLINE, start, position)
        return position + 1
