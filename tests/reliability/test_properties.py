"""Property tests of the codec and the framers that tests/unit does not already hold
(issue #6): the block decoder's fast path against line-by-line decoding on mixed
good and bad input, the CSV encoder in every dialect against the csv reader, the
native CSV encoder against the per-record one byte for byte on a large corpus, and the
line splitter and the length-prefixed framer on arbitrary bytes cut anywhere (byte by
byte included)."""

from __future__ import annotations

import json
import random
import struct
from itertools import accumulate, pairwise
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamer.core.deadletter import BadInput
from streamer.core.lines import Lines
from streamer.core.ndjson import UTF8_BOM, decode_block, nul_hole_reason
from streamer.sinks.stage.csv_native import NativeCsvEncoder, NativeEncodeError
from streamer.sinks.stage.csv_python import CsvEncoder
from streamer.sources.socket.framing import EMPTY_FRAME, Frames, LengthPrefixedFramer
from streamer.sources.splitter import LineSplitter
from tests.helpers import expected_rows, parse_csv

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
    b'{"d":' + b"[" * 2000 + b"]" * 2000 + b"}", b"", b"   ", b"\r", b" \t ",
    # where simdjson (the fast check) and orjson (the definition) could part:
    # numbers past a double or 64 bits, UTF-8 inside strings and keys, depth
    b'{"f":1e999}', b'{"f":[-2E+308]}', b'{"f":1' + b"0" * 400 + b"}", b'{"s":"\xed\xa0\x80"}',
    b'{"o":{"s":"\xc0\x80"}}', b'{"\xf4\x90\x80\x80":1}', b'{"s":"\xe2\x82"}',
    # and what it must still take
    b'{"s":"\xc3\xa9\xe2\x82\xac"}', b'{"f":1.5e-999}', b'{"h":"5e3eb755e999"}',
    b'{"d":' + b"[" * 1000 + b"]" * 1000 + b"}", b'{"u":18446744073709551615}',
    b'{"u":18446744073709551616}', b'{"d":' + b"[" * 1023 + b"]" * 1023 + b"}"])
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
    # every line is a record, a dead letter or blank, at its own offset (a run of
    # NULs: a hole, with the part of a line before it; then the rest a line of its own)
    for b in out.bad:
        assert block[b.offset - base:].startswith(b.raw)
    assert len(records) + len(bad) == sum(items_of_line(line, limit) for line in lines)


def items_of_line(line: bytes, limit: int) -> int:
    """How many records and dead letters a line gives: a NUL hole is one with the
    part of a line before it (two when that part is over the limit), and what follows
    it is a line of its own: nothing when blank, unless it is over the limit (a line
    is measured before it is read: its CR not counted)."""
    items = 0
    while (nul := line.find(b"\0")) >= 0:
        items += 2 if nul > limit else 1
        line = line[nul:].lstrip(b"\0")
    oversize = len(line.removesuffix(b"\r")) > limit
    return items + bool(line.strip() or oversize)


def _checked_int(text: str) -> int:
    if not -(2**63) <= int(text) < 2**63:
        raise OverflowError(text)
    return int(text)


def orjson_takes(line: bytes, limit: int) -> bool:
    """The definition of a record: a line of at most `limit` bytes that orjson
    decodes into a dict, exactly (no integer past 64 bits)."""
    if len(line) > limit:
        return False
    try:
        value = orjson.loads(line)
    except (orjson.JSONDecodeError, RecursionError):
        return False
    try:
        json.loads(line, parse_int=_checked_int)
    except OverflowError:
        return False
    return type(value) is dict


# valid records broken in small ways: the fast check must agree with orjson on each
typical = st.sampled_from([
    b'{"time":1700000000,"ts":"2023-11-14T22:13:20Z","latency_ms":22.1,"trace":"5e3eb755",'
    b'"n":null,"ok":true,"tags":["a","b"],"o":{"k":-0.5e-3},"msg":"caf\xc3\xa9 \\u00e9\\n"}'])
tokens = st.sampled_from([b"{", b"}", b"[", b"]", b'"', b"\\", b":", b",", b" ", b"1", b"-",
                          b".", b"e", b"E", b"+", b"0", b"999", b"null", b"true", b"\\u",
                          b"\\ud800", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\t",
                          b"\r", b"NaN", b"Infinity", b"1" * 20, b"\xef\xbb\xbf"])
edits = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 3), tokens), min_size=1,
                 max_size=3)


def mutate(line: bytes, changes: list[tuple[int, int, bytes]]) -> bytes:
    for position, removed, token in changes:
        position %= len(line) + 1
        line = line[:position] + token + line[position + removed:]
    return line.replace(b"\n", b" ")


@settings(max_examples=1000, deadline=None)
@given(lines=st.lists(any_line | st.tuples(typical, edits).map(lambda t: mutate(*t)),
                      min_size=1, max_size=8), limit=st.integers(8, 300))
def test_a_record_is_what_orjson_takes(lines: list[bytes], limit: int) -> None:
    # NULs are a hole: the record is what follows the last of them
    taken = [rest for line in lines if orjson_takes(rest := line.rsplit(b"\0", 1)[-1], limit)]
    assert decode_block(b"\n".join(lines) + b"\n", 0, limit).raws == taken
    # alone, a good line takes the fast path
    assert [raw for line in lines for raw in decode_block(line, 0, limit).raws] == taken


@settings(max_examples=300, deadline=None)
@given(block=st.binary(max_size=400), limit=st.integers(1, 100))
@example(block=b"\0\r", limit=1)  # a bad line that fits without its CR keeps the CR
@example(block=b"\t ", limit=1)  # a blank line over the limit is an oversize line
def test_decode_block_never_raises_on_arbitrary_bytes(block: bytes, limit: int) -> None:
    out = decode_block(block, 0, limit)
    assert all(type(r) is dict for r in out.records)
    # an oversize line: its first bytes; the CR of a CRLF is not counted
    assert all(len(b.raw.removesuffix(b"\r")) <= limit for b in out.bad)
    offsets = [b.offset for b in out.bad]
    assert offsets == sorted(offsets)
    lines = block.split(b"\n")
    assert len(out.records) + len(out.bad) == sum(items_of_line(line, limit) for line in lines)


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


@settings(max_examples=300, deadline=None)
@given(dialect=dialects, columns=columns_strategy,
       records=st.lists(st.dictionaries(st.sampled_from("abcd"), json_values, max_size=4),
                        min_size=1, max_size=15))
def test_csv_any_dialect_round_trips_through_the_csv_reader(
        dialect: dict[str, str], columns: list[str], records: list[dict[str, Any]]) -> None:
    encoder = CsvEncoder(columns, **dialect)
    data = encoder.header() + encoder.encode([(records, False)])
    rows = parse_csv(data, dialect["separator"], dialect["quote"])
    assert rows[0] == columns
    assert rows[1:] == expected_rows(records, columns, dialect["null_value"])


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
    assert parse_csv(fast, dialect["separator"], dialect["quote"]) == expected_rows(
        records, columns, dialect["null_value"])


def _numeric_corpus(count: int, seed: int) -> list[bytes]:
    """`count` NDJSON lines of 20 fields: integers and floats at every magnitude
    in the spellings JSON allows (1e21, 1E+21, 1.0e21, 0.1e-5, -0.0, 5e-324, ...),
    short strings, nulls; one record in 97 holds a nested array of such numbers."""
    rng = random.Random(seed)
    spellings = (repr, "{:e}".format, "{:E}".format, "{:.17g}".format,
                 lambda x: orjson.dumps(x).decode())
    # pools drawn once (a record picks from them): every magnitude, every spelling
    floats = [rng.choice(spellings)(rng.uniform(-10, 10) * 10.0 ** rng.randint(-320, 300))
              for _ in range(8192)]
    ints = [str(rng.randint(-(2**63), 2**63 - 1) >> rng.randrange(64)) for _ in range(4096)]
    words = [orjson.dumps(w).decode() for w in
             ["", "ok", "a,b", 'q"t', "#tag", "\\N", "NULL", "é", "line\nbreak", " pad "]]
    strings = words * 4 + ["null"] * 10
    pools = [ints, floats, floats, strings] * 5
    lines = []
    for n in range(count):
        parts = [f'"f{i}":{rng.choice(pool)}' for i, pool in enumerate(pools)]
        if n % 97 == 0:
            parts.append('"f3":[' + ",".join(repr(10.0 ** rng.randint(-9, 25))
                                              for _ in range(3)) + "]")
        lines.append(("{" + ",".join(parts) + "}").encode())
    return lines


def test_native_and_per_record_csv_are_the_same_bytes_on_a_large_numeric_corpus() -> None:
    """100,000 records in 10,000-record batches as the stage sink encodes them:
    natively, a refused batch per record; the whole CSV is byte for byte the
    per-record CSV, and only batches with a nested value yyjson writes otherwise
    are refused."""
    columns = [f"f{i}" for i in range(20)]
    raws = _numeric_corpus(100_000, seed=17)
    python = CsvEncoder(columns, null_value="\\N")
    native = NativeCsvEncoder(columns, null_value="\\N")
    got, refused = [], 0
    try:
        for start in range(0, len(raws), 10_000):
            batch = raws[start:start + 10_000]
            if start == 10_000:  # one batch without nested values: none refused
                batch = [raw for raw in batch if b"[" not in raw]
            try:
                got.append(native.encode([Lines.of(batch)]).rows)
            except NativeEncodeError:
                refused += 1
                got.append(python.encode([(list(map(orjson.loads, batch)), False)]))
    finally:
        native.close()
    flat = [raw for raw in raws[10_000:20_000] if b"[" not in raw]
    kept = raws[:10_000] + flat + raws[20_000:]
    want = python.encode([(list(map(orjson.loads, kept)), False)])
    assert b"".join(got) == want
    assert 0 < refused < 10


# ---------------------------------------------------------------- framers

def chunked(data: bytes, cuts: list[int] | None) -> list[bytes]:
    """`data` cut at `cuts`, or byte by byte when `cuts` is None."""
    if cuts is None:
        return [data[i:i + 1] for i in range(len(data))]
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(points)]


cuttings = st.none() | st.lists(st.integers(min_value=0), max_size=20)


def feed_all(framer: LengthPrefixedFramer, chunks: list[bytes], bound: int) -> Frames:
    out = Frames()
    for chunk in [*chunks, None]:
        got = framer.finish() if chunk is None else framer.feed(chunk)
        assert framer.buffered <= bound  # memory per connection stays bounded
        out.frames.extend(got.frames)
        out.offsets.extend(got.offsets)
        out.bad.extend(got.bad)
    return out


@settings(max_examples=400, deadline=None)
@given(stream=st.binary(max_size=300), limit=st.integers(1, 40), cuts=cuttings)
def test_length_prefixed_frames_tile_any_byte_stream(stream: bytes, limit: int,
                                                     cuts: list[int] | None) -> None:
    """Whatever arrives, however it is cut: frames and bad frames follow each other on
    the wire with no gap, until the end or an oversize header (which kills the framer)."""
    framer = LengthPrefixedFramer(limit)
    out = feed_all(framer, chunked(stream, cuts), bound=limit + 4)
    items = sorted([(o, f) for f, o in zip(out.frames, out.offsets, strict=True)]
                   + [(b.offset, b) for b in out.bad], key=lambda x: x[0])
    pos = 0
    for offset, item in items:
        assert offset == pos
        if isinstance(item, bytes):
            assert stream[pos:pos + 4] == struct.pack(">I", len(item))
            assert stream[pos + 4:pos + 4 + len(item)] == item and 0 < len(item) <= limit
            pos += 4 + len(item)
        elif item.reason == EMPTY_FRAME:
            assert stream[pos:pos + 4] == b"\0\0\0\0" and item.raw == b""
            pos += 4
        elif item.reason.startswith("frame of "):
            length = struct.unpack(">I", item.raw)[0]
            assert length > limit and item.raw == stream[pos:pos + 4]
            assert item.reason.startswith(f"frame of {length} bytes exceeds")
            assert framer.dead
            pos = len(stream)
        else:
            assert item.reason.startswith("truncated frame") and item.raw == stream[pos:]
            pos = len(stream)
    assert pos == len(stream) and framer.offset == len(stream)


@settings(max_examples=400, deadline=None)
@given(stream=st.binary(max_size=300).map(lambda b: b.replace(b"a", b"\n")),
       bom=st.booleans(), limit=st.integers(1, 40), cuts=cuttings)
@example(stream=b"\0" * 8 + b"\r", bom=False, limit=8, cuts=None)  # a CR past the limit
def test_the_line_splitter_accounts_for_every_line_of_any_stream(
        stream: bytes, bom: bool, limit: int, cuts: list[int] | None) -> None:
    """Every line, however the stream is cut, is a record, a dead letter at its own
    offset or blank; an unfinished line never holds more than `limit` + 1 bytes."""
    stream = UTF8_BOM + stream if bom else stream
    splitter = LineSplitter(0, limit)
    raws: list[bytes] = []
    bad: list[BadInput] = []
    for chunk in [*chunked(stream, cuts), None]:
        decoded, _ = splitter.finish() if chunk is None else splitter.feed(chunk)
        assert splitter.buffered <= limit + 1
        raws += decoded.raws
        bad += decoded.bad
    assert splitter.offset == len(stream)
    body = len(UTF8_BOM) if stream.startswith(UTF8_BOM) else 0
    lines = stream[body:].split(b"\n")
    starts = list(accumulate((len(x) + 1 for x in lines), initial=body))
    assert [b.offset for b in bad] == sorted(b.offset for b in bad)
    taken = iter(raws)
    dead = {b.offset: b for b in bad}
    for start, line in zip(starts, lines, strict=False):
        while (nul := line.find(b"\0")) >= 0:  # a hole, reported once (with the part
            rest = line[nul:].lstrip(b"\0")  # of a line before it), then a line of its own
            hole = len(line) - nul - len(rest)
            if nul > limit:  # that part over the limit: a dead letter of its own
                assert dead.pop(start).raw == line[:limit], start
                assert dead.pop(start + nul) == BadInput(start + nul, nul_hole_reason(hole),
                                                         b""), start
            else:
                assert dead.pop(start) == BadInput(start, nul_hole_reason(hole, nul),
                                                   line[:nul]), start
            start, line = start + nul + hole, rest
        if start in dead:
            # a bad line keeps its CR; only a line over the limit (CR not counted) is cut
            fits = len(line.removesuffix(b"\r")) <= limit
            assert dead.pop(start).raw == (line if fits else line[:limit]), start
        elif line.strip():
            assert next(taken) == line and len(line.removesuffix(b"\r")) <= limit
    assert not dead and next(taken, None) is None
