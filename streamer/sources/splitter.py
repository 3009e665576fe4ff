"""NDJSON byte streams cut into checked blocks: the one set of line rules for the
file, stdin and newline-framed socket sources.

* A line ends at b"\\n".  A CR before it stays part of the line's bytes (JSON
  whitespace: the record keeps the bytes it arrived as) but does not count
  against the limit, so a CRLF stream takes the same lines as an LF one.
* Blank lines (nothing but JSON whitespace, a lone CR included) are skipped,
  not dead-lettered (`decode_block`).
* A UTF-8 BOM at the very start of a stream (offset 0 of a file, stdin, each
  connection) is skipped, even when it arrives cut across reads; a BOM
  anywhere else is part of its line, which is then not valid JSON.
* A line longer than the limit (without its CR LF) is dead-lettered with its
  stream offset and its first `limit` bytes, and skipped up to the next
  newline.  It is never held whole: at most `limit` + 1 bytes of an unfinished
  line are kept, and a line that outgrows them is dead-lettered at once (a
  crash while its rest is skipped must not lose it), so its reason cannot say
  how long it was.
* A run of NUL bytes is a hole (a crash with delayed allocation left NULs where
  the data was, the newline before the next record among them) and then perhaps a
  record: the NULs and the part of a line before them (delayed allocation zeroes
  from a block boundary, so a hole may start mid-line) are one bad input (offset,
  length, that part of the line as raw, not the NULs), dropped as they arrive
  however long the run, and the rest is a line of its own.  The offset stays at
  the start of the hole (or of the line it cut) until the hole's end is seen.
* At the end of a finite stream (a file not followed or rotated away, stdin at
  EOF, a closed connection) the last line needs no newline.  A file read once
  (not followed) whose last line is not JSON yet is left there (`cut_short`): a
  writer may be writing it, and the next run reads it whole.

The file path is the fast path: a read is cut once at its last newline
(`bytes.rfind`), and the block of whole lines goes to `decode_block` as it is,
split and checked there in C.  The reads of a line longer than a read are held as
pieces and joined once, when its newline comes (joining them at each read made a
50 MB line cost 1.3 s of CPU in 1 MiB reads, quadratic in its reads).
"""

from __future__ import annotations

import orjson

from streamer.core.deadletter import BadInput
from streamer.core.ndjson import (
    UTF8_BOM,
    Decoded,
    decode_block,
    nul_hole_reason,
    oversize_reason,
)

NUL = b"\0"


class LineSplitter:
    """Feed it reads; it hands back each block of complete lines decoded, with
    the stream offset of the block's first byte.

    `offset` is the stream offset up to which everything has been handed out
    (the end of the last block): a checkpoint may move there once that block is
    acknowledged.  An oversize line that has outgrown the carry is added to the
    bad lines of the block before it, so dead letters follow stream order.
    """

    def __init__(self, offset: int, limit: int, limit_name: str = "max_line_bytes") -> None:
        self.offset = offset
        self._limit = limit
        self._limit_name = limit_name
        self._carry = b""
        # reads after `_carry` without a newline, joined once the line's end comes
        self._pieces: list[bytes] = []
        self._pieces_bytes = 0
        self._skipping = False
        self._at_start = offset == 0
        self._hole = 0  # NUL bytes of a hole at `offset`, dropped, its end not seen yet
        self._cut = b""  # the part of a line before the hole (at `offset`), if any

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished line held for the next read (at most `limit` + 1)."""
        return len(self._carry) + self._pieces_bytes

    def _held(self) -> bytes:
        """The unfinished line's bytes as one (the pieces joined into `_carry`)."""
        if self._pieces:
            self._carry = b"".join((self._carry, *self._pieces))
            self._pieces.clear()
            self._pieces_bytes = 0
        return self._carry

    def _hold(self, data: bytes) -> tuple[Decoded, int]:
        """A read without a newline: a piece of the unfinished line."""
        if data:
            self._pieces.append(data)
            self._pieces_bytes += len(data)
        if self.buffered > self._limit:  # the limit's rules see the line whole
            self._held()
            return self._hand_out(b"")
        return self._decode(b"", self.offset), self.offset

    def _line_start(self) -> tuple[bytes, ...]:
        """What precedes a read's first newline: `_carry` and the pieces, taken."""
        start = (self._carry, *self._pieces)
        self._pieces.clear()
        self._pieces_bytes = 0
        return start

    def nul_held_at(self) -> int | None:
        """The stream offset of the first NUL held (a hole whose end is not seen, or
        NULs in the unfinished line), None when none: at a followed file's end, a
        writer may fill them in later (pwrite, mmap into a preallocated file)."""
        if self._hole:
            return self.offset + len(self._cut)
        nul = self._held().find(NUL) if self.buffered else -1
        return None if nul < 0 else self.offset + nul

    def rewind(self) -> int:
        """Forget what is held after `offset` (a hole, an unfinished line): the
        caller reads again from the offset returned."""
        self._carry, self._cut, self._hole, self._skipping = b"", b"", 0, False
        self._pieces.clear()
        self._pieces_bytes = 0
        return self.offset

    def feed(self, data: bytes) -> tuple[Decoded, int]:
        if self._at_start:
            data = self._skip_bom(data)
            if self._at_start:  # all so far may be the start of a BOM
                return self._decode(b"", self.offset), self.offset
        if self._skipping:
            newline = data.find(b"\n")
            nul = data.find(NUL, 0, len(data) if newline < 0 else newline)
            if nul >= 0:  # a hole in the line skipped: it ends the skip
                self.offset += nul
                self._skipping = False
                return self._feed_hole(data[nul:])
            skipped = len(data) if newline < 0 else newline + 1
            self.offset += skipped
            data = data[skipped:]
            if newline < 0:
                return self._decode(b"", self.offset), self.offset
            self._skipping = False
        if self._hole:
            return self._feed_hole(data)
        cut = data.rfind(b"\n") + 1
        if not cut:
            return self._hold(data)
        if self.buffered:
            block = b"".join((*self._line_start(), memoryview(data)[:cut]))
        else:
            block = data[:cut]
        self._carry = data[cut:]
        return self._hand_out(block)

    def _feed_hole(self, data: bytes) -> tuple[Decoded, int]:
        """`data` read inside a hole (it starts with NULs the first time)."""
        data, hole = self._after_hole(data)
        if hole is None:
            return self._decode(b"", self.offset), self.offset
        decoded, start = self.feed(data)
        decoded.bad.insert(0, hole)
        return decoded, start

    def feed_from(self, buffer: bytearray, size: int) -> tuple[Decoded, int]:
        """`feed` the first `size` bytes of `buffer`, a read buffer the caller
        fills again after this returns: nothing handed back refers to it.  The
        block is built in one copy (carry + the read up to its last newline)
        instead of three fresh allocations (the read, carry + read, the cut), so
        a worker's heap does not grow with short-lived read-sized objects."""
        cut = buffer.rfind(b"\n", 0, size) + 1
        if not cut or self._at_start or self._skipping or self._hole:  # rare: the general path
            return self.feed(bytes(memoryview(buffer)[:size]))
        with memoryview(buffer) as view:
            block = b"".join((*self._line_start(), view[:cut]))
            self._carry = bytes(view[cut:size])
        return self._hand_out(block)

    def _hand_out(self, block: bytes) -> tuple[Decoded, int]:
        """`block` (whole lines) decoded; `self._carry` already holds what follows it."""
        start = self.offset
        self.offset += len(block)
        decoded = self._decode(block, start)
        carry = self._carry
        if len(carry) > self._limit and len(carry) - (carry[-1] == 13) > self._limit:
            decoded.bad.extend(self._outgrown())
        return decoded, start

    def _outgrown(self) -> list[BadInput]:
        """The carry is over the limit: a line skipped to its end, or a NUL hole
        (perhaps after the start of a line), never held and never skipped past."""
        carry = self._carry
        nul = carry.find(NUL)
        if nul < 0:
            return [self._begin_skip()]
        if nul <= self._limit:
            return self._enter_hole(nul)
        self._carry = carry[:nul]  # a line over the limit before the hole: as such
        found = [self._begin_skip()]
        self._skipping = False
        self._carry = carry[nul:]
        return found + self._enter_hole(0)

    def cut_short(self) -> bool:
        """Whether the unfinished last line is not a JSON value yet: a file read
        once while a writer appends to it ends mid-line.  A last line that parses
        needs no newline (a JSON object is never the start of another)."""
        if self._hole:  # NULs at the end: nothing written there yet
            return True
        if self._skipping or not self._held().strip(b" \t\r"):
            return False
        try:
            orjson.loads(self._carry.lstrip(NUL))
        except orjson.JSONDecodeError:
            return True
        return False

    def finish(self) -> tuple[Decoded, int]:
        """End of a finite stream: the last line needs no newline."""
        self._skipping = self._at_start = False
        hole = self._close_hole() if self._hole else None
        block, self._carry = self._held(), b""
        start = self.offset
        self.offset += len(block)
        decoded = self._decode(block, start)
        if hole is not None:
            decoded.bad.insert(0, hole)
        return decoded, start

    def _decode(self, block: bytes, start: int) -> Decoded:
        return decode_block(block, start, self._limit, self._limit_name)

    def _skip_bom(self, data: bytes) -> bytes:
        """At the start of the stream: drop a BOM, or hold what may be its start."""
        buf = self._held() + data
        if len(buf) < len(UTF8_BOM) and UTF8_BOM.startswith(buf):
            self._carry = buf
            return b""
        self._at_start = False
        self._carry = b""
        if buf.startswith(UTF8_BOM):
            self.offset += len(UTF8_BOM)
            return buf[len(UTF8_BOM):]
        return buf

    def _enter_hole(self, cut: int) -> list[BadInput]:
        """The carry has NULs from `cut` on and has outgrown the limit: drop them,
        the offset staying at the hole's start (or the start of the line it cut)
        until its end is seen (a restart reads the hole again and reports it
        once).  What follows the NULs in the carry ends the hole and is kept as a
        line of its own."""
        carry, self._carry = self._carry, b""
        self._cut, carry = carry[:cut], carry[cut:]
        rest, hole = self._after_hole(carry)
        if hole is None:
            return []
        self._carry = rest
        if len(rest) > self._limit and len(rest) - (rest[-1] == 13) > self._limit:
            return [hole, *self._outgrown()]
        return [hole]

    def _after_hole(self, data: bytes) -> tuple[bytes, BadInput | None]:
        """`data` read inside a hole: what follows the hole's NULs, and the hole
        when it ended in there (None while it goes on)."""
        rest = data.lstrip(NUL)
        self._hole += len(data) - len(rest)
        if not rest:
            return b"", None
        return rest, self._close_hole()

    def _close_hole(self) -> BadInput:
        cut = self._cut
        hole = BadInput(self.offset, nul_hole_reason(self._hole, len(cut)), cut)
        self.offset += len(cut) + self._hole
        self._hole, self._cut = 0, b""
        return hole

    def _begin_skip(self) -> BadInput:
        line = BadInput(self.offset, oversize_reason(self._limit, self._limit_name),
                        self._carry[: self._limit])
        self._skipping = True
        self.offset += len(self._carry)
        self._carry = b""
        return line
