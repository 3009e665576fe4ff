"""Incremental frame decoders for byte streams (socket sources).

Both framers take the bytes of one connection in arbitrary chunks and return the
complete frames found so far. They do no I/O.

Offsets: every offset is a position in the connection's byte stream, counted from
0 at the first byte ever passed to ``feed()``.

* ``Decoded.offsets[i]`` is where ``Decoded.frames[i]`` starts on the wire: the
  first byte of the line for newline framing, the first byte of the 4-byte length
  header for length-prefixed framing.
* ``FrameError.offset`` is the same position for the broken frame.
* ``framer.offset`` is the number of bytes fed so far, i.e. the stream offset the
  next byte passed to ``feed()`` will have. ``framer.buffered`` is how many of those
  bytes are held waiting for the rest of their frame.

``feed()`` returns frames and errors in separate lists, each in stream order; the
offsets give their relative order when it matters.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from operator import add, methodcaller
from typing import Literal, NamedTuple, Protocol

__all__ = [
    "Decoded",
    "FrameError",
    "FrameErrorKind",
    "Framer",
    "LengthPrefixedFramer",
    "NewlineFramer",
]

FrameErrorKind = Literal["oversize", "truncated", "empty"]

_HEADER = struct.Struct(">I")
_strip_cr = methodcaller("removesuffix", b"\r")


@dataclass(frozen=True, slots=True)
class FrameError:
    """A frame that could not be delivered.

    ``length`` by kind:
      * ``oversize``: the frame's length (newline: the line without its terminator;
        length-prefixed: the declared payload length).
      * ``truncated``: the number of bytes received for the frame, header included.
      * ``empty``: 0.

    ``sample`` by kind:
      * ``oversize``: newline framing keeps the first ``max_frame_bytes`` bytes of
        the line; length-prefixed keeps the 4 header bytes (often telling, e.g.
        ``b"GET "`` from an HTTP client on the wrong port).
      * ``truncated``: the bytes received, header included.
      * ``empty``: ``b""``.
    """

    kind: FrameErrorKind
    offset: int
    length: int
    sample: bytes


class Decoded(NamedTuple):
    frames: list[bytes]
    offsets: list[int]
    errors: list[FrameError]


class Framer(Protocol):
    offset: int

    @property
    def dead(self) -> bool: ...

    @property
    def buffered(self) -> int: ...

    def feed(self, data: bytes) -> Decoded: ...

    def finish(self) -> Decoded: ...


def _nothing() -> Decoded:
    return Decoded([], [], [])


class NewlineFramer:
    """Newline-delimited records (NDJSON).

    Lines end at ``b"\\n"``; one trailing ``b"\\r"`` is stripped; empty lines are
    skipped. A line longer than ``max_frame_bytes`` (after stripping) becomes an
    ``oversize`` error and decoding resumes at the next line; its bytes are
    discarded as they arrive, never buffered beyond ``max_frame_bytes + 1``.
    At ``finish()`` an unterminated last line is still a record.
    """

    __slots__ = (
        "_buf",
        "_discard_cr",
        "_discard_len",
        "_discarding",
        "_sample",
        "_start",
        "max_frame_bytes",
        "offset",
    )

    def __init__(self, max_frame_bytes: int) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be >= 1")
        self.max_frame_bytes = max_frame_bytes
        self.offset = 0
        # The unterminated line so far (at most max_frame_bytes + 1 bytes: one more
        # than the limit, because a trailing b"\r" may still turn out to be a CR-LF).
        self._buf = bytearray()
        self._start = 0  # stream offset of the line in _buf / being discarded
        self._discarding = False
        self._discard_len = 0
        self._discard_cr = False  # last discarded byte was b"\r"
        self._sample = b""

    @property
    def dead(self) -> bool:
        return False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> Decoded:
        n = len(data)
        if not n:
            return _nothing()
        base = self.offset
        self.offset = base + n
        parts = data.split(b"\n")
        tail = parts.pop()
        if not parts:
            self._hold(data, base)
            return _nothing()

        errors: list[FrameError] = []
        # Stream offset where each part starts, from the raw part lengths.
        offsets = list(accumulate(map(add, map(len, parts), repeat(1)), initial=base))
        tail_start = offsets.pop()
        offsets[0] = self._start
        if self._discarding:
            first = parts[0]
            total = self._discard_len + len(first)
            cr = first.endswith(b"\r") if first else self._discard_cr
            errors.append(FrameError("oversize", self._start, total - cr, self._sample))
            self._discarding = False
            self._sample = b""
            parts[0] = b""  # dropped below with the empty lines
        elif self._buf:
            self._buf += parts[0]
            parts[0] = bytes(self._buf)
            self._buf.clear()

        if b"\r\n" in data or parts[0].endswith(b"\r"):
            parts = list(map(_strip_cr, parts))
        if not all(parts):
            offsets = list(compress(offsets, parts))
            parts = list(compress(parts, parts))
        limit = self.max_frame_bytes
        if parts and max(map(len, parts)) > limit:
            parts, offsets = self._split_oversize(parts, offsets, errors)

        self._start = tail_start
        if tail:
            self._hold(tail, tail_start)
        return Decoded(parts, offsets, errors)

    def finish(self) -> Decoded:
        """Flush at end of stream: the unterminated last line, if any."""
        out = _nothing()
        if self._discarding:
            length = self._discard_len - self._discard_cr
            out.errors.append(FrameError("oversize", self._start, length, self._sample))
        elif self._buf:
            line = bytes(self._buf).removesuffix(b"\r")
            if len(line) > self.max_frame_bytes:
                out.errors.append(
                    FrameError("oversize", self._start, len(line), line[: self.max_frame_bytes])
                )
            elif line:
                out.frames.append(line)
                out.offsets.append(self._start)
        self._buf.clear()
        self._discarding = False
        self._discard_len = 0
        self._sample = b""
        self._start = self.offset
        return out

    def _hold(self, chunk: bytes, start: int) -> None:
        """Keep an unterminated piece of a line (``chunk`` has no newline)."""
        if self._discarding:
            self._discard_len += len(chunk)
            self._discard_cr = chunk[-1] == 13
            return
        buf = self._buf
        if not buf:
            self._start = start
        limit = self.max_frame_bytes
        if len(buf) + len(chunk) <= limit + 1:
            buf += chunk
            return
        self._discarding = True
        self._discard_len = len(buf) + len(chunk)
        self._discard_cr = chunk[-1] == 13
        self._sample = bytes(buf[:limit]) + chunk[: max(0, limit - len(buf))]
        buf.clear()

    def _split_oversize(
        self, parts: list[bytes], offsets: list[int], errors: list[FrameError]
    ) -> tuple[list[bytes], list[int]]:
        limit = self.max_frame_bytes
        frames: list[bytes] = []
        offs: list[int] = []
        for line, off in zip(parts, offsets, strict=True):
            if len(line) > limit:
                errors.append(FrameError("oversize", off, len(line), line[:limit]))
            else:
                frames.append(line)
                offs.append(off)
        errors.sort(key=lambda e: e.offset)
        return frames, offs


class LengthPrefixedFramer:
    """Kafka-style frames: a 4-byte big-endian unsigned length, then the payload.

    A declared length above ``max_frame_bytes`` is an ``oversize`` error and kills
    the framer: the stream cannot be resynchronised, so later feeds return nothing
    and ``dead`` is True. A zero length is an ``empty`` error and decoding goes
    on. At ``finish()`` a partial frame is a ``truncated`` error.
    """

    __slots__ = ("_dead", "_need", "_pending", "_start", "max_frame_bytes", "offset")

    def __init__(self, max_frame_bytes: int) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be >= 1")
        self.max_frame_bytes = max_frame_bytes
        self.offset = 0
        self._dead = False
        # At most one incomplete frame is ever held; complete frames are sliced
        # straight out of the fed chunk.
        self._pending = bytearray()
        self._start = 0  # stream offset of the pending frame's header
        self._need = 4  # total size of the pending frame once known (header + payload)

    @property
    def dead(self) -> bool:
        return self._dead

    @property
    def buffered(self) -> int:
        return len(self._pending)

    def feed(self, data: bytes) -> Decoded:
        n = len(data)
        base = self.offset
        self.offset = base + n
        out = _nothing()
        if self._dead or not n:
            return out
        pos = 0
        pending = self._pending
        if pending:
            pos = self._complete_pending(data, out)
            if pos < 0:
                return out
        self._scan(data, pos, base, out)
        return out

    def finish(self) -> Decoded:
        """Flush at end of stream: a partial frame becomes a ``truncated`` error."""
        out = _nothing()
        if self._pending and not self._dead:
            got = bytes(self._pending)
            out.errors.append(FrameError("truncated", self._start, len(got), got))
        self._pending.clear()
        self._need = 4
        self._start = self.offset
        return out

    def _header(self, length: int, start: int, header: bytes, out: Decoded) -> bool:
        """Check a declared length; record an error. Returns False if not a payload."""
        if length > self.max_frame_bytes:
            out.errors.append(FrameError("oversize", start, length, bytes(header)))
            self._dead = True
            self._pending.clear()
            return False
        if not length:
            out.errors.append(FrameError("empty", start, 0, b""))
            return False
        return True

    def _complete_pending(self, data: bytes, out: Decoded) -> int:
        """Finish the frame straddling into ``data``; return where ``data`` resumes, or -1."""
        pending = self._pending
        n = len(data)
        pos = 0
        if len(pending) < 4:
            pos = 4 - len(pending)
            pending += data[:pos]
            if len(pending) < 4:
                return -1
            (length,) = _HEADER.unpack_from(pending)
            if not self._header(length, self._start, pending, out):
                pending.clear()
                return -1 if self._dead else pos
            self._need = 4 + length
        missing = self._need - len(pending)
        if missing > n - pos:
            pending += memoryview(data)[pos:]
            return -1
        pending += memoryview(data)[pos : pos + missing]
        out.frames.append(bytes(memoryview(pending)[4:]))
        out.offsets.append(self._start)
        pending.clear()
        return pos + missing

    def _scan(self, data: bytes, pos: int, base: int, out: Decoded) -> None:
        n = len(data)
        unpack = _HEADER.unpack_from
        limit = self.max_frame_bytes
        frames = out.frames
        offsets = out.offsets
        while n - pos >= 4:
            (length,) = unpack(data, pos)
            if length > limit or not length:
                self._header(length, base + pos, data[pos : pos + 4], out)
                if self._dead:
                    return
                pos += 4
                continue
            end = pos + 4 + length
            if end > n:
                self._need = 4 + length
                break
            frames.append(data[pos + 4 : end])
            offsets.append(base + pos)
            pos = end
        else:
            self._need = 4
        if pos < n:
            self._pending += memoryview(data)[pos:]
            self._start = base + pos
