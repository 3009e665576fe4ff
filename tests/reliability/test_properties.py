"""Property tests of the codec and the framers that tests/unit does not already hold
(issue #6): the block decoder's fast path against line-by-line decoding on mixed
good and bad input, the CSV encoder in every dialect against the csv reader, and the
framers on arbitrary bytes cut anywhere (byte by byte included)."""

from __future__ import annotations

import csv
import io
import struct
from itertools import accumulate, pairwise
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.codec import CsvEncoder, decode_block
from streamer.framing import Decoded, LengthPrefixedFramer, NewlineFramer
from tests.helpers import csv_cell

# ---------------------------------------------------------------- decode_block

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=4), children, max_size=3),
                           max_leaves=6)
good_lines = st.dictionaries(st.text(max_size=6), json_values, max_size=4).map(orjson.dumps)
bad_lines = st.sampled_from([
    b"not json", b'{"a":', b"[1,2]", b'"s"', b"7", b"null", b'{"a":"\xff"}', b'{"s":"\\ud800"}',
    b'{"n":"a\x00b"}', b'{"big":%d}' % 2**64, b'{"neg":-%d}' % 2**70, b"\xef\xbb\xbf{}",
    b'{"d":' + b"[" * 2000 + b"]" * 2000 + b"}", b"", b"   ", b"\r", b" \t "])
any_line = (good_lines | bad_lines | st.binary(max_size=40)).map(
    lambda line: line.replace(b"\n", b" "))


def decode_line_by_line(lines: list[bytes], base: int, limit: int) -> tuple[list, list, list]:
    """Each line decoded on its own: the reference for any block."""
    records, raws, bad = [], [], []
    for line, offset in zip(lines, accumulate((len(x) + 1 for x in lines), initial=base),
                            strict=False):
        out = decode_block(line, offset, limit)
        records += out.records
        raws += out.raws
        bad += [(b.offset, b.reason, b.raw) for b in out.bad]
    return records, raws, bad


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(any_line, max_size=25), base=st.integers(0, 2**40),
       limit=st.integers(8, 300), terminated=st.booleans())
def test_block_decoding_equals_line_by_line(lines: list[bytes], base: int, limit: int,
                                            terminated: bool) -> None:
    block = b"\n".join(lines) + (b"\n" if terminated and lines else b"")
    out = decode_block(block, base, limit)
    records, raws, bad = decode_line_by_line(lines, base, limit)
    assert out.records == records
    assert out.raws == raws
    assert [(b.offset, b.reason, b.raw) for b in out.bad] == bad
    assert out.nbytes == sum(map(len, raws))
    # every line is a record, a dead letter or blank, at its own offset
    for b in out.bad:
        assert block[b.offset - base:].startswith(b.raw)
    blank = sum(1 for line in lines if not line.strip())
    assert len(records) + len(bad) + blank == len(lines)


@settings(max_examples=300, deadline=None)
@given(block=st.binary(max_size=400), limit=st.integers(1, 100))
def test_decode_block_never_raises_on_arbitrary_bytes(block: bytes, limit: int) -> None:
    out = decode_block(block, 0, limit)
    assert all(type(r) is dict for r in out.records)
    assert all(len(b.raw) <= limit for b in out.bad)  # an oversize line: its first bytes
    offsets = [b.offset for b in out.bad]
    assert offsets == sorted(offsets)
    lines = block.split(b"\n")
    blank = sum(1 for line in lines if not line.strip())
    assert len(out.records) + len(out.bad) + blank == len(lines)


# ---------------------------------------------------------------- CsvEncoder

dialects = st.fixed_dictionaries({
    "separator": st.sampled_from([",", ";", "\t", "|"]),
    "quote": st.sampled_from(['"', "'"]),
    "null_value": st.sampled_from(["", "\\N", "NULL"]),
})
columns_strategy = st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4,
                            unique=True)
plain_values = (st.none() | st.integers(-(2**63), 2**63 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10))


def parse(data: bytes, dialect: dict[str, str]) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline=""),
                           delimiter=dialect["separator"], quotechar=dialect["quote"]))


def expected_cells(records: list[dict[str, Any]], columns: list[str],
                   null_value: str) -> list[list[str]]:
    return [[csv_cell(r.get(c), null_value) for c in columns] for r in records]


@settings(max_examples=300, deadline=None)
@given(dialect=dialects, columns=columns_strategy,
       records=st.lists(st.dictionaries(st.sampled_from("abcd"), json_values, max_size=4),
                        min_size=1, max_size=15))
def test_csv_any_dialect_round_trips_through_the_csv_reader(
        dialect: dict[str, str], columns: list[str], records: list[dict[str, Any]]) -> None:
    encoder = CsvEncoder(columns, **dialect)
    data = encoder.header() + encoder.encode([(records, False)])
    rows = parse(data, dialect)
    assert rows[0] == columns
    assert rows[1:] == expected_cells(records, columns, dialect["null_value"])


@settings(max_examples=300, deadline=None)
@given(dialect=dialects, columns=columns_strategy,
       records=st.lists(st.dictionaries(st.sampled_from("abcd"), plain_values, max_size=4),
                        min_size=1, max_size=15),
       pieces=st.integers(1, 4))
def test_csv_fast_path_equals_slow_path(dialect: dict[str, str], columns: list[str],
                                        records: list[dict[str, Any]], pieces: int) -> None:
    """Plain records (strings, numbers, nulls, missing columns) in lists as batches
    bring them: the C fast path writes exactly what the per-cell path writes."""
    encoder = CsvEncoder(columns, **dialect)
    size = -(-len(records) // pieces)
    lists = [records[i:i + size] for i in range(0, len(records), size)]
    fast = encoder.encode([(part, True) for part in lists])
    assert fast == encoder.encode([(part, False) for part in lists])
    assert parse(fast, dialect) == expected_cells(records, columns, dialect["null_value"])


# ---------------------------------------------------------------- framers

def chunked(data: bytes, cuts: list[int] | None) -> list[bytes]:
    """`data` cut at `cuts`, or byte by byte when `cuts` is None."""
    if cuts is None:
        return [data[i:i + 1] for i in range(len(data))]
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(points)]


cuttings = st.none() | st.lists(st.integers(min_value=0), max_size=20)


def feed_all(framer: NewlineFramer | LengthPrefixedFramer, chunks: list[bytes],
             bound: int) -> Decoded:
    out = Decoded([], [], [])
    for chunk in [*chunks, None]:
        got = framer.finish() if chunk is None else framer.feed(chunk)
        assert framer.buffered <= bound  # memory per connection stays bounded
        out.frames.extend(got.frames)
        out.offsets.extend(got.offsets)
        out.errors.extend(got.errors)
    return out


@settings(max_examples=400, deadline=None)
@given(stream=st.binary(max_size=300), limit=st.integers(1, 40), cuts=cuttings)
def test_length_prefixed_frames_tile_any_byte_stream(stream: bytes, limit: int,
                                                     cuts: list[int] | None) -> None:
    """Whatever arrives, however it is cut: frames and errors follow each other on the
    wire with no gap, until the end or an oversize header (which kills the framer)."""
    framer = LengthPrefixedFramer(limit)
    out = feed_all(framer, chunked(stream, cuts), bound=limit + 4)
    items = sorted([(o, "frame", f) for f, o in zip(out.frames, out.offsets, strict=True)]
                   + [(e.offset, e.kind, e) for e in out.errors], key=lambda x: x[0])
    pos = 0
    for offset, kind, item in items:
        assert offset == pos
        if kind == "frame":
            assert stream[pos:pos + 4] == struct.pack(">I", len(item))
            assert stream[pos + 4:pos + 4 + len(item)] == item and 0 < len(item) <= limit
            pos += 4 + len(item)
        elif kind == "empty":
            assert stream[pos:pos + 4] == b"\0\0\0\0"
            pos += 4
        elif kind == "oversize":
            assert item.length > limit and item.sample == stream[pos:pos + 4]
            assert item.length == struct.unpack(">I", item.sample)[0]
            assert framer.dead
            pos = len(stream)
        else:
            assert kind == "truncated" and item.sample == stream[pos:]
            pos = len(stream)
    assert pos == len(stream) and framer.offset == len(stream)


@settings(max_examples=400, deadline=None)
@given(stream=st.binary(max_size=300).map(lambda b: b.replace(b"a", b"\n")),
       limit=st.integers(1, 40), cuts=cuttings)
def test_newline_frames_account_for_every_line_of_any_stream(
        stream: bytes, limit: int, cuts: list[int] | None) -> None:
    framer = NewlineFramer(limit)
    out = feed_all(framer, chunked(stream, cuts), bound=limit + 1)
    found = sorted([(o, f) for f, o in zip(out.frames, out.offsets, strict=True)]
                   + [(e.offset, e) for e in out.errors], key=lambda x: x[0])
    lines = [line for line in zip(accumulate((len(x) + 1 for x in stream.split(b"\n")),
                                             initial=0), stream.split(b"\n"), strict=False)
             if line[1].removesuffix(b"\r")]
    assert [o for o, _ in found] == [o for o, _ in lines]
    for (offset, item), (_, raw) in zip(found, lines, strict=True):
        line = raw.removesuffix(b"\r")
        if isinstance(item, bytes):
            assert item == line and len(line) <= limit
        else:
            assert (item.kind, item.length, item.sample) == ("oversize", len(line),
                                                             line[:limit]), offset
    assert framer.offset == len(stream)
