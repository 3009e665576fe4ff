"""The native (DuckDB) CSV encoder writes the rows the per-record encoder writes."""

import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.lines import Lines
from streamer.core.ndjson import decode_block
from streamer.sinks.stage.csv_native import NativeCsvEncoder, NativeEncodeError
from streamer.sinks.stage.csv_python import CsvEncoder, is_plain
from tests.helpers import parse_csv

COLUMNS = ["a", "b", "c", "d", "e"]

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["", ",", '"', "\r", "\n", "\r\n", ";", "a,b", 'say "hi"', " pad ", "\t", "NULL", "\\N"])
scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | text)
values = st.recursive(scalars, lambda children: st.lists(children, max_size=3)
                      | st.dictionaries(text, children, max_size=3), max_leaves=6)
records = st.lists(st.dictionaries(st.sampled_from([*COLUMNS, "other"]), values, max_size=6),
                   min_size=1, max_size=30)
dialects = st.sampled_from([(",", '"', ""), (";", "'", "\\N"), ("\t", '"', "NULL"),
                            ("|", '"', "")])


def _same_cell(native: str, python: str) -> bool:
    """Equal text, or equal numbers, or equal JSON values (nested floats)."""
    if native == python:
        return True
    try:
        return math.isclose(float(native), float(python), rel_tol=0, abs_tol=0)
    except ValueError:
        pass
    try:
        return orjson.loads(native) == orjson.loads(python)
    except orjson.JSONDecodeError:
        return False


@pytest.fixture(scope="module")
def native_encoders():
    """One encoder per dialect (a DuckDB connection each), reused by every example."""
    encoders: dict[tuple[str, str, str], NativeCsvEncoder] = {}
    yield encoders
    for encoder in encoders.values():
        encoder.close()


@settings(max_examples=150, deadline=None)
@given(items=records, dialect=dialects, cut=st.floats(0, 1), as_list=st.booleans())
def test_native_rows_equal_per_record_rows(native_encoders, items, dialect, cut, as_list):
    separator, quote, null_value = dialect
    raws = [orjson.dumps(r) for r in items]
    decoded = decode_block(b"\n".join(raws) + b"\n", 0, 10**6)
    assert decoded.bad == [] and decoded.whole
    python = CsvEncoder(COLUMNS, separator=separator, quote=quote, null_value=null_value)
    if dialect not in native_encoders:
        native_encoders[dialect] = NativeCsvEncoder(COLUMNS, separator=separator, quote=quote,
                                                    null_value=null_value)
    want = python.encode([(decoded.records, is_plain(decoded.raws))])
    # the read's block as it is, cut in two parts (a batch boundary), or a list of lines
    lines = Lines.of(decoded.raws) if as_list else decoded.lines()
    got = native_encoders[dialect].encode(lines.split(int(cut * len(items))))
    assert b"\xef\xbb\xbf" not in got
    assert got.endswith(b"\r\n") and got.count(b"\r\n") >= len(items)
    got_rows, want_rows = parse_csv(got, separator, quote), parse_csv(want, separator, quote)
    assert len(got_rows) == len(want_rows) == len(items)
    for got_row, want_row in zip(got_rows, want_rows, strict=True):
        assert len(got_row) == len(COLUMNS)
        assert all(_same_cell(g, w) for g, w in zip(got_row, want_row, strict=True)), \
            (got_row, want_row)


def assert_native_rows_equal_python_rows(items: list[dict]) -> None:
    native = NativeCsvEncoder(COLUMNS)
    try:
        got = native.encode([Lines.of([orjson.dumps(r) for r in items])])
    finally:
        native.close()
    assert got == CsvEncoder(COLUMNS).encode([(items, False)])


def test_typical_records_are_byte_identical():
    items = [{"a": 1700000000, "b": "2023-11-14T22:13:20Z", "c": 22.1, "d": None,
              "e": "disk full, retrying"},
             {"a": -5, "b": "", "c": 1e21, "e": {"k": [1, 2.5, None, True]}},
             {"b": 'q"z', "c": 0.1, "d": False, "e": "line\rbreak"}]
    assert_native_rows_equal_python_rows(items)


def test_refused_batch_raises_for_the_per_record_fallback():
    native = NativeCsvEncoder(COLUMNS)
    try:
        with pytest.raises(NativeEncodeError, match="duplicate key"):
            native.encode([Lines.of([b'{"a":1}', b'{"a":1,"a":2}'])])
        # the encoder stays usable after a refusal
        assert native.encode([Lines.of([b'{"a":1,"b":"x"}'])]) == b"1,x,,,\r\n"
    finally:
        native.close()


def test_records_larger_than_the_default_reader_buffer_are_encoded_natively():
    # the JSON reader's maximum_object_size is set per batch (1 MiB at least, for
    # memory): a 3 MiB record among small ones must not be refused (DuckDB 2.0 does
    # not enforce the limit; this guards the contract across DuckDB versions)
    items = [{"a": 1, "b": "x"}, {"a": 2, "b": "é" * (3 * 1024 * 1024 // 2), "c": 0.5},
             {"a": 3, "e": [1, 2]}]
    assert_native_rows_equal_python_rows(items)
