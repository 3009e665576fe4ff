from __future__ import annotations

import struct
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.sources.socket.framing import (
    Decoded,
    FrameError,
    Framer,
    LengthPrefixedFramer,
    NewlineFramer,
)

MAX = 16


def run(framer: Framer, chunks: list[bytes], *, finish: bool = True) -> Decoded:
    """Feed every chunk (then finish) and concatenate the results."""
    out = Decoded([], [], [])
    results = [framer.feed(c) for c in chunks]
    if finish:
        results.append(framer.finish())
    for r in results:
        assert len(r.frames) == len(r.offsets)
        out.frames.extend(r.frames)
        out.offsets.extend(r.offsets)
        out.errors.extend(r.errors)
    assert all(type(f) is bytes for f in out.frames)
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(points)]


def lp(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


# ---------------------------------------------------------------- reference models


def newline_reference(stream: bytes, limit: int) -> Decoded:
    """Whole-stream model of newline framing (the framer must agree for any chunking)."""
    out = Decoded([], [], [])
    pos = 0
    for raw in stream.split(b"\n"):
        line = raw.removesuffix(b"\r")
        if len(line) > limit:
            out.errors.append(FrameError("oversize", pos, len(line), line[:limit]))
        elif line:
            out.frames.append(line)
            out.offsets.append(pos)
        pos += len(raw) + 1
    return out


def lp_reference(stream: bytes, limit: int) -> tuple[Decoded, bool]:
    out = Decoded([], [], [])
    pos = 0
    while pos < len(stream):
        if len(stream) - pos < 4:
            rest = stream[pos:]
            out.errors.append(FrameError("truncated", pos, len(rest), rest))
            break
        (length,) = struct.unpack_from(">I", stream, pos)
        if length > limit:
            out.errors.append(FrameError("oversize", pos, length, stream[pos : pos + 4]))
            return out, True
        if length == 0:
            out.errors.append(FrameError("empty", pos, 0, b""))
            pos += 4
            continue
        end = pos + 4 + length
        if end > len(stream):
            rest = stream[pos:]
            out.errors.append(FrameError("truncated", pos, len(rest), rest))
            break
        out.frames.append(stream[pos + 4 : end])
        out.offsets.append(pos)
        pos = end
    return out, False


# ---------------------------------------------------------------- newline: examples


def test_newline_basic_offsets_and_crlf() -> None:
    f = NewlineFramer(MAX)
    r = f.feed(b"ab\r\ncd\n\n\r\nef")
    assert r.frames == [b"ab", b"cd"]
    assert r.offsets == [0, 4]
    assert r.errors == []
    assert f.offset == 12
    assert f.buffered == 2
    r = f.feed(b"g\n")
    assert (r.frames, r.offsets) == ([b"efg"], [10])
    assert f.finish() == Decoded([], [], [])


def test_newline_only_one_cr_is_stripped() -> None:
    assert run(NewlineFramer(MAX), [b"a\r\r\n"]).frames == [b"a\r"]


def test_newline_cr_lf_split_across_feeds() -> None:
    r = run(NewlineFramer(MAX), [b"abc\r", b"\nd"])
    assert r.frames == [b"abc", b"d"]
    assert r.offsets == [0, 5]


def test_newline_final_line_without_newline_is_a_record() -> None:
    f = NewlineFramer(MAX)
    assert f.feed(b"x\nlast").frames == [b"x"]
    r = f.finish()
    assert (r.frames, r.offsets) == ([b"last"], [2])
    # finish() is idempotent
    assert f.finish() == Decoded([], [], [])


def test_newline_oversize_in_one_chunk_resumes() -> None:
    long = b"L" * (MAX + 5)
    r = run(NewlineFramer(MAX), [b"a\n" + long + b"\nb\n"])
    assert r.frames == [b"a", b"b"]
    assert r.offsets == [0, 2 + len(long) + 1]
    assert r.errors == [FrameError("oversize", 2, len(long), long[:MAX])]


def test_newline_oversize_is_discarded_not_buffered() -> None:
    f = NewlineFramer(MAX)
    f.feed(b"ok\nxx")
    total = 2
    for _ in range(1000):
        assert f.feed(b"y" * 1000) == Decoded([], [], [])
        total += 1000
        assert f.buffered <= MAX + 1
    r = f.feed(b"z\r\nnext\n")
    total += 1
    assert r.frames == [b"next"]
    assert r.errors == [FrameError("oversize", 3, total, b"xx" + b"y" * (MAX - 2))]
    assert r.offsets == [3 + total + 2]


def test_newline_exact_limit_and_cr_boundary() -> None:
    exact = b"e" * MAX
    # MAX bytes plus a CR that only turns out to be part of CR-LF in the next feed
    r = run(NewlineFramer(MAX), [exact + b"\r", b"\n", exact + b"x", b"\n"])
    assert r.frames == [exact]
    assert r.errors == [FrameError("oversize", MAX + 2, MAX + 1, exact)]


def test_newline_oversize_cr_lf_split_while_discarding() -> None:
    long = b"L" * (MAX + 5)
    # CR at the end of the chunk that starts discarding / of a later discarded chunk
    for chunks in ([long + b"\r", b"\nok\n"], [long, b"xx\r", b"\nok\n"]):
        r = run(NewlineFramer(MAX), chunks)
        size = sum(map(len, chunks[:-1])) - 1
        assert r.errors == [FrameError("oversize", 0, size, long[:MAX])]
        assert (r.frames, r.offsets) == ([b"ok"], [size + 2])


def test_newline_oversize_at_finish() -> None:
    r = run(NewlineFramer(MAX), [b"a\n", b"b" * (MAX + 10)])
    assert r.frames == [b"a"]
    assert r.errors == [FrameError("oversize", 2, MAX + 10, b"b" * MAX)]
    r = run(NewlineFramer(MAX), [b"b" * (MAX + 1)])
    assert r.errors == [FrameError("oversize", 0, MAX + 1, b"b" * MAX)]


def test_newline_empty_feed_and_never_dead() -> None:
    f = NewlineFramer(MAX)
    assert f.feed(b"") == Decoded([], [], [])
    assert not f.dead


@pytest.mark.parametrize("cls", [NewlineFramer, LengthPrefixedFramer])
def test_invalid_limit(cls: type[NewlineFramer] | type[LengthPrefixedFramer]) -> None:
    with pytest.raises(ValueError):
        cls(0)


# ---------------------------------------------------------------- length-prefixed: examples


def test_lp_basic_and_offsets() -> None:
    stream = lp(b"hello") + lp(b"w") + lp(b"x" * MAX)
    r = run(LengthPrefixedFramer(MAX), [stream])
    assert r.frames == [b"hello", b"w", b"x" * MAX]
    assert r.offsets == [0, 9, 14]
    assert r.errors == []


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
        assert r.errors == [FrameError("empty", 5, 0, b"")]


def test_lp_oversize_kills_the_framer() -> None:
    f = LengthPrefixedFramer(MAX)
    r = f.feed(lp(b"ok") + b"GET / HTTP/1.1\r\n")
    assert r.frames == [b"ok"]
    assert r.errors == [FrameError("oversize", 6, int.from_bytes(b"GET ", "big"), b"GET ")]
    assert f.dead
    assert f.feed(lp(b"more")) == Decoded([], [], [])
    assert f.finish() == Decoded([], [], [])
    assert f.offset == 6 + 16 + 8


def test_lp_oversize_header_split_across_feeds() -> None:
    f = LengthPrefixedFramer(MAX)
    head = struct.pack(">I", MAX + 1)
    assert f.feed(head[:2]) == Decoded([], [], [])
    r = f.feed(head[2:] + b"zz")
    assert r.errors == [FrameError("oversize", 0, MAX + 1, head)]
    assert f.dead


@pytest.mark.parametrize("cut", [1, 3, 4, 6])
def test_lp_truncated_at_finish(cut: int) -> None:
    stream = lp(b"first") + lp(b"second")
    r = run(LengthPrefixedFramer(MAX), [stream[: 9 + cut]])
    assert r.frames == [b"first"]
    assert r.errors == [FrameError("truncated", 9, cut, stream[9 : 9 + cut])]


# ---------------------------------------------------------------- properties

chunk_cuts = st.lists(st.integers(min_value=0), max_size=12)

# Lines without b"\n"; CRs and empty lines included on purpose.
line_bytes = st.binary(max_size=MAX + 8).map(lambda b: b.replace(b"\n", b"\r"))


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(line_bytes, max_size=12),
    terminated=st.booleans(),
    cuts=chunk_cuts,
)
def test_newline_matches_reference_for_any_chunking(
    lines: list[bytes], terminated: bool, cuts: list[int]
) -> None:
    stream = b"\n".join(lines) + (b"\n" if terminated and lines else b"")
    f = NewlineFramer(MAX)
    assert run(f, split_at(stream, cuts)) == newline_reference(stream, MAX)
    assert f.offset == len(stream)


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(
        st.binary(min_size=1, max_size=MAX * 2).filter(
            lambda b: b"\n" not in b and not b.endswith(b"\r")
        ),
        max_size=15,
    ),
    cuts=chunk_cuts,
)
def test_newline_payload_round_trip(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(p + b"\n" for p in payloads)
    r = run(NewlineFramer(MAX), split_at(stream, cuts))
    starts, pos = [], 0
    for p in payloads:
        starts.append(pos)
        pos += len(p) + 1
    good = [(p, s) for p, s in zip(payloads, starts, strict=True) if len(p) <= MAX]
    bad = [(p, s) for p, s in zip(payloads, starts, strict=True) if len(p) > MAX]
    assert r.frames == [p for p, _ in good]
    assert r.offsets == [s for _, s in good]
    assert r.errors == [FrameError("oversize", s, len(p), p[:MAX]) for p, s in bad]


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
    assert r.errors == []

    cut = data.draw(st.integers(0, len(stream)), label="cut")
    truncated = stream[:cut]
    r = run(LengthPrefixedFramer(MAX), split_at(truncated, cuts))
    expected, _ = lp_reference(truncated, MAX)
    assert r == expected
    boundaries = {0}
    for p in payloads:
        boundaries.add(max(boundaries) + 4 + len(p))
    assert bool(r.errors) == (cut not in boundaries)
    if r.errors:
        (err,) = r.errors
        assert err.kind == "truncated"
        assert err.offset + err.length == cut


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
