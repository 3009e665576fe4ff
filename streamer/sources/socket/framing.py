"""Length-prefixed framing (socket sources): a 4-byte big-endian unsigned length,
then the payload, as Kafka frames its requests.

The framer takes the bytes of one connection in arbitrary chunks and returns the
complete frames found so far; it does no I/O.  (Newline framing is not a framer:
it is the line splitter of every NDJSON stream, `streamer.sources.lines`.)

Offsets: every offset is a position in the connection's byte stream, counted from
0 at the first byte ever passed to ``feed()``.

* ``Decoded.offsets[i]`` is where ``Decoded.frames[i]`` starts on the wire: the
  first byte of its 4-byte length header.
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
from typing import Literal, NamedTuple

__all__ = ["Decoded", "FrameError", "FrameErrorKind", "LengthPrefixedFramer"]

FrameErrorKind = Literal["oversize", "truncated", "empty"]

_HEADER = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class FrameError:
    """A frame that could not be delivered.

    ``length`` by kind:
      * ``oversize``: the declared payload length.
      * ``truncated``: the number of bytes received for the frame, header included.
      * ``empty``: 0.

    ``sample`` by kind:
      * ``oversize``: the 4 header bytes (often telling, e.g. ``b"GET "`` from an
        HTTP client on the wrong port).
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


def _nothing() -> Decoded:
    return Decoded([], [], [])


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
