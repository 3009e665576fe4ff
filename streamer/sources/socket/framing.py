"""Length-prefixed framing (socket sources): a 4-byte big-endian unsigned length,
then the payload, as Kafka frames its requests.

The framer takes the bytes of one connection in arbitrary chunks and returns the
complete frames found so far; it does no I/O.  (Newline framing is not a framer:
it is the line splitter of every NDJSON stream, `streamer.sources.splitter`.)

Offsets: every offset is a position in the connection's byte stream, counted from
0 at the first byte ever passed to ``feed()``.

* ``Frames.offsets[i]`` is where ``Frames.frames[i]`` starts on the wire: the
  first byte of its 4-byte length header.
* A bad frame is a ``BadInput`` at the same position, its reason saying what is
  wrong: a declared length over ``max_frame_bytes`` (raw: the 4 header bytes,
  often telling, e.g. ``b"GET "`` from an HTTP client on the wrong port), an
  empty frame (raw: nothing), or a frame cut short by the end of the connection
  (raw: the bytes received, header included).
* ``framer.offset`` is the number of bytes fed so far, i.e. the stream offset the
  next byte passed to ``feed()`` will have. ``framer.buffered`` is how many of those
  bytes are held waiting for the rest of their frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from streamer.core.deadletter import BadInput

_HEADER = struct.Struct(">I")
EMPTY_FRAME = "empty frame (length 0)"


def oversize_frame(length: int, limit: int) -> str:
    return (f"frame of {length} bytes exceeds max_frame_bytes ({limit}); connection closed "
            "(cannot resynchronise); raw holds its 4 header bytes")


def truncated_frame(received: int) -> str:
    return (f"truncated frame: the connection ended after {received} of its bytes "
            "(header included)")


@dataclass(slots=True)
class Frames:
    """What one feed found, each list in stream order.  `empty`: how many of the
    bad frames were empty ones (a producer counts them as frames sent)."""

    frames: list[bytes] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    bad: list[BadInput] = field(default_factory=list)
    empty: int = 0


class LengthPrefixedFramer:
    """Kafka-style frames: a 4-byte big-endian unsigned length, then the payload.

    A declared length above ``max_frame_bytes`` is a bad frame that kills the
    framer: the stream cannot be resynchronised, so later feeds return nothing
    and ``dead`` is True. A zero length is a bad (empty) frame and decoding goes
    on. At ``finish()`` a partial frame is a bad (truncated) one.
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

    def feed(self, data: bytes) -> Frames:
        n = len(data)
        base = self.offset
        self.offset = base + n
        out = Frames()
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

    def finish(self) -> Frames:
        """Flush at end of stream: a partial frame becomes a truncated bad frame."""
        out = Frames()
        if self._pending and not self._dead:
            got = bytes(self._pending)
            out.bad.append(BadInput(self._start, truncated_frame(len(got)), got))
        self._pending.clear()
        self._need = 4
        self._start = self.offset
        return out

    def _header(self, length: int, start: int, header: bytes, out: Frames) -> bool:
        """Check a declared length; record a bad frame. Returns False if not a payload."""
        if length > self.max_frame_bytes:
            out.bad.append(BadInput(start, oversize_frame(length, self.max_frame_bytes),
                                    bytes(header)))
            self._dead = True
            self._pending.clear()
            return False
        if not length:
            out.bad.append(BadInput(start, EMPTY_FRAME, b""))
            out.empty += 1
            return False
        return True

    def _complete_pending(self, data: bytes, out: Frames) -> int:
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

    def _scan(self, data: bytes, pos: int, base: int, out: Frames) -> None:
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
