from __future__ import annotations

import struct
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.deadletter import BadInput
from streamer.sources.socket.framing import (
    EMPTY_FRAME,
    Frames,
    LengthPrefixedFramer,
    oversize_frame,
    truncated_frame,
)

MAX = 16


def run(framer: LengthPrefixedFramer, chunks: list[bytes], *, finish: bool = True) -> Frames:
    """Feed every chunk (then finish) and concatenate the results."""
    out = Frames()
    results = [framer.feed(c) for c in chunks]
    if finish:
        results.append(framer.finish())
    for r in results:
        assert len(r.frames) == len(r.offsets)
        out.frames.extend(r.frames)
        out.offsets.extend(r.offsets)
        out.bad.extend(r.bad)
        out.empty += r.empty
    assert all(type(f) is bytes for f in out.frames)
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(points)]


def lp(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


# ---------------------------------------------------------------- reference models


def lp_reference(stream: bytes, limit: int) -> tuple[Frames, bool]:
    out = Frames()
    pos = 0
    while pos < len(stream):
        if len(stream) - pos < 4:
            rest = stream[pos:]
            out.bad.append(BadInput(pos, truncated_frame(len(rest)), rest))
            break
        (length,) = struct.unpack_from(">I", stream, pos)
        if length > limit:
            out.bad.append(BadInput(pos, oversize_frame(length, limit), stream[pos : pos + 4]))
            return out, True
        if length == 0:
            out.bad.append(BadInput(pos, EMPTY_FRAME, b""))
            out.empty += 1
            pos += 4
            continue
        end = pos + 4 + length
        if end > len(stream):
            rest = stream[pos:]
            out.bad.append(BadInput(pos, truncated_frame(len(rest)), rest))
            break
        out.frames.append(stream[pos + 4 : end])
        out.offsets.append(pos)
        pos = end
    return out, False


def test_invalid_limit() -> None:
    with pytest.raises(ValueError):
        LengthPrefixedFramer(0)


# ---------------------------------------------------------------- length-prefixed: examples


def test_lp_basic_and_offsets() -> None:
    stream = lp(b"hello") + lp(b"w") + lp(b"x" * MAX)
    r = run(LengthPrefixedFramer(MAX), [stream])
    assert r.frames == [b"hello", b"w", b"x" * MAX]
    assert r.offsets == [0, 9, 14]
    assert r.bad == []


def test_lp_byte_by_byte() -> None:
    stream = lp(b"abc") + lp(b"defg")
    f = LengthPrefixedFramer(MAX)
    r = run(f, [stream[i : i + 1] for i in range(len(stream))])
    assert r.frames == [b"abc", b"defg"]
    assert r.offsets == [0, 7]
    assert f.offset == len(stream)
    assert f.buffered == 0


def test_lp_empty_frame_is_an_error_and_decoding_goes_on() -> None:
    stream = lp(b"a") + lp(b"") + lp(b"b")
    for chunks in ([stream], [stream[:6], stream[6:]], [stream[:7], stream[7:]]):
        r = run(LengthPrefixedFramer(MAX), chunks)
        assert r.frames == [b"a", b"b"]
        assert r.offsets == [0, 9]
        assert r.bad == [BadInput(5, "empty frame (length 0)", b"")]
        assert r.empty == 1


def test_lp_oversize_kills_the_framer() -> None:
    f = LengthPrefixedFramer(MAX)
    r = f.feed(lp(b"ok") + b"GET / HTTP/1.1\r\n")
    assert r.frames == [b"ok"]
    length = int.from_bytes(b"GET ", "big")
    assert r.bad == [BadInput(6, f"frame of {length} bytes exceeds max_frame_bytes ({MAX}); "
                                 "connection closed (cannot resynchronise); raw holds its 4 "
                                 "header bytes", b"GET ")]
    assert r.empty == 0
    assert f.dead
    assert f.feed(lp(b"more")) == Frames()
    assert f.finish() == Frames()
    assert f.offset == 6 + 16 + 8


def test_lp_oversize_header_split_across_feeds() -> None:
    f = LengthPrefixedFramer(MAX)
    head = struct.pack(">I", MAX + 1)
    assert f.feed(head[:2]) == Frames()
    r = f.feed(head[2:] + b"zz")
    assert r.bad == [BadInput(0, oversize_frame(MAX + 1, MAX), head)]
    assert f.dead


@pytest.mark.parametrize("cut", [1, 3, 4, 6])
def test_lp_truncated_at_finish(cut: int) -> None:
    stream = lp(b"first") + lp(b"second")
    r = run(LengthPrefixedFramer(MAX), [stream[: 9 + cut]])
    assert r.frames == [b"first"]
    assert r.bad == [BadInput(9, f"truncated frame: the connection ended after {cut} of its "
                                 "bytes (header included)", stream[9 : 9 + cut])]


# ---------------------------------------------------------------- properties

chunk_cuts = st.lists(st.integers(min_value=0), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=1, max_size=MAX), max_size=15),
    cuts=chunk_cuts,
    data=st.data(),
)
def test_lp_round_trip_and_truncation(
    payloads: list[bytes], cuts: list[int], data: st.DataObject
) -> None:
    stream = b"".join(lp(p) for p in payloads)
    r = run(LengthPrefixedFramer(MAX), split_at(stream, cuts))
    assert r.frames == payloads
    assert r.bad == []

    cut = data.draw(st.integers(0, len(stream)), label="cut")
    truncated = stream[:cut]
    r = run(LengthPrefixedFramer(MAX), split_at(truncated, cuts))
    expected, _ = lp_reference(truncated, MAX)
    assert r == expected
    boundaries = {0}
    for p in payloads:
        boundaries.add(max(boundaries) + 4 + len(p))
    assert bool(r.bad) == (cut not in boundaries)
    if r.bad:
        (bad,) = r.bad
        assert bad.reason.startswith("truncated frame")
        assert bad.offset + len(bad.raw) == cut


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=MAX + 4), max_size=10),
    garbage=st.binary(max_size=8),
    cuts=chunk_cuts,
)
def test_lp_matches_reference_with_empty_and_oversize(
    payloads: list[bytes], garbage: bytes, cuts: list[int]
) -> None:
    stream = b"".join(lp(p) for p in payloads) + garbage
    f = LengthPrefixedFramer(MAX)
    expected, dead = lp_reference(stream, MAX)
    assert run(f, split_at(stream, cuts)) == expected
    assert f.dead == dead
    assert f.offset == len(stream)
