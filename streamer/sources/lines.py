"""Cuts a byte stream into blocks of whole lines, with stream offsets."""

from __future__ import annotations

from streamer.core.ndjson import UTF8_BOM, BadLine


class LineSplitter:
    """Feed it reads; it hands back blocks of complete lines.

    `offset` is the stream offset up to which everything has been handed out
    (the end of the last block): a checkpoint may move there once that block is
    acknowledged.  A line longer than `max_line_bytes` is never held whole: its
    first `max_line_bytes` bytes become a `BadLine` sample and the rest is
    skipped up to the next newline.
    """

    def __init__(self, offset: int, max_line_bytes: int) -> None:
        self.offset = offset
        self._max = max_line_bytes
        self._carry = b""
        self._skipping = False
        self._at_start = offset == 0

    def feed(self, data: bytes) -> tuple[bytes, int, list[BadLine]]:
        """Returns (block, block_offset, oversize_lines)."""
        bad: list[BadLine] = []
        if self._at_start:
            self._at_start = False
            if data.startswith(UTF8_BOM):
                data = data[len(UTF8_BOM):]
                self.offset += len(UTF8_BOM)
        if self._skipping:
            newline = data.find(b"\n")
            skipped = len(data) if newline < 0 else newline + 1
            self.offset += skipped
            data = data[skipped:]
            if newline < 0:
                return b"", self.offset, bad
            self._skipping = False
        buf = self._carry + data if self._carry else data
        cut = buf.rfind(b"\n") + 1
        block, self._carry = buf[:cut], buf[cut:]
        start = self.offset
        self.offset += cut
        if len(self._carry) > self._max:
            bad.append(self._begin_skip())
        return block, start, bad

    def finish(self) -> tuple[bytes, int, list[BadLine]]:
        """End of a finite stream: the last line needs no newline."""
        self._skipping = False
        block, self._carry = self._carry, b""
        start = self.offset
        self.offset += len(block)
        return block, start, []

    def _begin_skip(self) -> BadLine:
        """Dead-letter the line now (a crash mid-skip must not lose it), skip the rest."""
        line = BadLine(self.offset, f"line exceeds max_line_bytes ({self._max}); raw holds "
                       f"its first {self._max} bytes", self._carry[: self._max])
        self._skipping = True
        self.offset += len(self._carry)
        self._carry = b""
        return line
