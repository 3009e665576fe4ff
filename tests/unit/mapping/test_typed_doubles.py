"""A double column in the typed query: the value's JSON text is its cell when a
few tests prove it (DOUBLE_PROVEN), else the text -> double -> text round trip.
What is proven is exactly Python's `repr(float)`, and every other form gives the
per-record encoder's cell or dead letter."""

from __future__ import annotations

import os

import duckdb
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.lines import Lines
from streamer.mapping.sql_typed import DOUBLE_CELL, DOUBLE_PROVEN
from streamer.sinks.stage.csv_native import NativeCsvEncoder
from streamer.sinks.stage.csv_python import CsvEncoder

COLUMNS = [{"name": "d", "from": "m.d", "type": "double"},
           {"name": "e", "type": "double", "default": 2.5},
           # a value a string column reads too is read as VARCHAR: the round trip
           {"name": "x", "type": "double"}, {"name": "xs", "from": "x", "type": "string"}]


@pytest.fixture(scope="module")
def con():
    con = duckdb.connect()
    yield con
    con.close()


def proven_cells(con, values: list[bytes]) -> list[str | None]:
    """The cell DOUBLE_PROVEN gives each JSON value as DuckDB's reader reads it
    (None: not proven, the round trip decides)."""
    fd = os.memfd_create("doubles", os.MFD_CLOEXEC)
    try:
        os.write(fd, b"".join(b'{"d": ' + v + b"}\n" for v in values))
        s = "CAST(d AS VARCHAR)"
        return [cell for (cell,) in con.execute(
            f"SELECT CASE WHEN {DOUBLE_PROVEN.format(s=s)} THEN {DOUBLE_CELL.format(s=s)} END "
            f"FROM read_json('/proc/self/fd/{fd}', format = 'newline_delimited', "
            "columns = {'d': 'JSON'})").fetchall()]
    finally:
        os.close(fd)


finite = st.floats(allow_nan=False, allow_infinity=False)
short = st.integers(-(10**15), 10**15).map(lambda n: n / 10 ** (n % 7))  # few digits


@settings(max_examples=60, deadline=None)
@given(numbers=st.lists(finite | short | st.integers(-(2**63), 2**64 - 1), min_size=1,
                        max_size=200))
def test_a_proven_text_is_pythons_repr(con, numbers) -> None:
    values = [orjson.dumps(n) for n in numbers]
    for number, cell in zip(numbers, proven_cells(con, values), strict=True):
        if cell is not None:
            assert cell == repr(float(number)), number


def test_what_is_proven_and_what_takes_the_round_trip(con) -> None:
    proven = [b"0.315", b"122.6", b"67.0", b"-3.5", b"38893", b"-7", b"0.0001", b"0.00012",
              b"99999999999999", b"1234567890.123", b"-0.1", b"1.5e2", b"0.1"]
    assert proven_cells(con, proven) == [
        "0.315", "122.6", "67.0", "-3.5", "38893.0", "-7.0", "0.0001", "0.00012",
        "99999999999999.0", "1234567890.123", "-0.1", "150.0", "0.1"]
    # the round trip: strings (quoted), literals, zero (-0 too), exponents, below
    # 1e-4, above 1e14, 16 characters and more, what DuckDB's reader allows
    # beyond JSON (NaN, Infinity, a number past the double's range)
    others = [b'"12.5"', b'" 1"', b"true", b"false", b"0", b"-0", b"0.0", b"-0.0", b"1e-7",
              b"0.00009999", b"1e16", b"1e21", b"1000000000000000", b"0.12345678901234",
              b"12345678901234567", b"0.1234567890123456789", b"NaN", b"Infinity",
              b"-Infinity", b"1E400", b"-1.5E400", b"[1.5]", b'{"a": 1.5}']
    assert proven_cells(con, others) == [None] * len(others)


CONVERTED = [1, -1, 0, -0.0, 1.5, 122.6, 67.0, 0.315, 1e-7, 1e-5, 1e-4, 9.999e-5, 1e14, 1e15,
             1e16, 1e21, 1.7976931348623157e308, 5e-324, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1,
             0.1 + 0.2, 123456789.12345678, "12.50", "1.", ".5", "+1.5", "-0", "0012.5",
             "1E5", "1e-7", None]
NOT_CONVERTED = [" 1", "1 ", "inf", "-inf", "nan", "Infinity", "1_000", "0x10", "", "1e400",
                 "1.5é", True, False, [1.5], {"a": 1}]


def encode_both(batch: list[dict]) -> NativeCsvEncoder:
    raws = [orjson.dumps(r) for r in batch]
    python, native = CsvEncoder(COLUMNS), NativeCsvEncoder(COLUMNS)
    want = python.encode([([orjson.loads(r) for r in raws], False)])
    got = native.encode([Lines.of(raws)])
    assert (got.rows, got.rejected) == (want, python.rejected)
    native.close()
    return native


def test_every_form_gives_the_per_record_cells() -> None:
    native = encode_both([{"m": {"d": d}, "e": d, "x": d} for d in CONVERTED * 3])
    assert native.typed_batches == 1  # the typed query was sure of every record


@pytest.mark.parametrize("bad", NOT_CONVERTED, ids=repr)
def test_a_value_that_does_not_convert_is_the_per_record_dead_letter(bad) -> None:
    native = encode_both([{"m": {"d": d}, "e": d, "x": d} for d in CONVERTED]
                         + [{"m": {"d": bad}}])
    assert native.split_batches == 1  # that record alone to the full query
