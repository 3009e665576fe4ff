"""The per-record CSV encoder: cells, quoting, dialects, the plain fast path."""

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.ndjson import decode_block
from streamer.sinks.stage.csv_python import CsvEncoder, is_plain
from tests.helpers import expected_rows, parse_csv


def test_plain_flag():
    assert is_plain(decode_block(b'{"a":1,"b":"x","c":null}\n', 0, 99).raws)
    for not_plain in (b'{"a":true}', b'{"a":[1]}', b'{"a":{"b":1}}', b'{"a":false}'):
        assert not is_plain(decode_block(not_plain + b"\n", 0, 99).raws)


def test_csv_cells_nulls_nested_booleans_and_quoting():
    enc = CsvEncoder(["a", "b", "c", "d", "e"], null_value="\\N")
    records = [{"a": 'he said "hi", ok', "b": True, "c": {"x": [1, 2]}, "d": None},
               {"a": "line\nbreak", "b": 1.5, "c": -3, "e": "é"}]
    rows = parse_csv(enc.header() + enc.encode([(records, False)]))
    assert rows == [["a", "b", "c", "d", "e"],
                    ['he said "hi", ok', "true", '{"x":[1,2]}', "\\N", "\\N"],
                    ["line\nbreak", "1.5", "-3", "\\N", "é"]]


def test_csv_fast_path_equals_slow_path_including_missing_columns():
    enc = CsvEncoder(["a", "b", "c"])
    records = [{"a": 1, "b": "x,y", "c": None}, {"a": 2.25, "b": 'q"'}, {"c": "only"}]
    assert enc.encode([(records, True)]) == enc.encode([(records, False)])


def test_csv_single_column_and_separator():
    enc = CsvEncoder(["a"], separator=";")
    assert enc.encode([([{"a": "x;y"}, {"a": 1}], True)]) == b'"x;y"\r\n1\r\n'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8)
records_strategy = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), json_values, max_size=4),
    min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(records_strategy)
def test_decode_then_csv_roundtrip(records):
    block = b"".join(orjson.dumps(r) + b"\n" for r in records)
    out = decode_block(block, 0, 10**6)
    assert out.bad == []
    assert out.records == records
    enc = CsvEncoder(["a", "b", "c", "d"])
    rows = parse_csv(enc.encode([(out.records, is_plain(out.raws))]))
    assert rows == expected_rows(records, list("abcd"))


def test_carriage_returns_inside_values_are_quoted():
    """A bare CR in a field reads as a line break in every CSV reader (found by
    hypothesis): rows end with CRLF, so CSV quotes any CR or LF in a value."""
    enc = CsvEncoder(["a", "b"])
    records = [{"a": "\r", "b": "x\ry"}, {"a": "\r\n", "b": None}]
    for plain in (True, False):
        rows = parse_csv(enc.header() + enc.encode([(records, plain)]))
        assert rows == [["a", "b"], ["\r", "x\ry"], ["\r\n", ""]]
