"""The mapping's typed query: which mappings have one, and that the values it
reads give the per-record encoder's cells (the hypothesis suite in
tests/reliability/test_mapping_typed_properties.py goes wider)."""

from __future__ import annotations

import orjson
import pytest

from streamer.core.lines import Lines
from streamer.mapping.spec import ColumnSpec
from streamer.mapping.sql_typed import TypedMappingQuery
from streamer.sinks.stage.csv_native import NativeCsvEncoder
from streamer.sinks.stage.csv_python import CsvEncoder
from tests.helpers.c_functions import WAYS, native_encoder


def typed(*columns: object) -> TypedMappingQuery | None:
    return TypedMappingQuery.of([ColumnSpec.model_validate(c) for c in columns], "")


def test_mappings_it_cannot_read_in_one_schema_have_none() -> None:
    assert typed("a", {"name": "b", "from": "a.b"}) is None  # a leaf and an object
    assert typed({"name": "x", "from": "a[0]"}, {"name": "y", "from": "a.b"}) is None
    assert typed({"name": "x", "from": "a.Id"}, {"name": "y", "from": "a.id"}) is None
    assert typed({"name": "r", "from": ".", "type": "json"}) is None
    assert typed({"name": "j", "from": "a", "type": "json"}) is None
    assert typed({"name": "t", "type": "timestamp", "parse": "%Y-%m-%d"}) is None
    assert typed({"name": "h", "value": "x"}) is None  # nothing to read
    assert typed("a", {"name": "b", "from": "c.d[2]"}) is not None


COLUMNS = [
    {"name": "iso", "from": "e.t", "type": "timestamp"},
    {"name": "ms", "from": "e.t", "type": "timestamp", "format": "epoch_ms"},
    {"name": "ns", "from": "e.t", "type": "timestamp", "format": "epoch_ns"},
    {"name": "s_iso", "from": "s", "type": "timestamp", "parse": "epoch_s"},
    {"name": "ms_iso", "from": "ms", "type": "timestamp", "parse": "epoch_ms"},
    {"name": "d", "type": "double"},
    {"name": "i", "from": "x[1].i", "type": "integer"},
    {"name": "b", "type": "boolean", "default": False},
    {"name": "txt", "type": "string"},
]
TIMES = ["2023-11-14T22:13:20.123456789Z", "2024-02-29 23:59:59.5+05:30",
         "1969-12-31T23:59:59.9999999-00:01", "0001-01-01T00:00:00Z",
         "9999-12-31T23:59:59.999999999+00:00", "2023-11-14T22:13:20", None]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("null_value", ["", "NULL"])
def test_values_it_reads_give_the_per_record_cells(null_value: str, way: str) -> None:
    records = [{"e": {"t": t}, "s": s, "ms": ms, "d": d, "x": x, "b": b, "txt": txt}
               for t, s, ms, d, x, b, txt in zip(
                   TIMES * 10, [0, -1, 1700000000, -62135596800, 253402300799, None, 5] * 10,
                   [-1, 1, 1700000000123, 999, -62135596800000, 0, None] * 10,
                   [1, 1.5, "2.50", 1e-7, 1e22, -0.0, None] * 10,
                   [[{}, {"i": 5}], [], None, [{"i": "-12"}], [None, {"i": None}], [], []] * 10,
                   [True, "false", None, False, "true", None, True] * 10,
                   ["a,b", 'q"', "", "é\n", 7, 1.25, None] * 10, strict=True)]
    raws = [orjson.dumps(r) for r in records]
    native = native_encoder(COLUMNS, way, null_value=null_value)
    python = CsvEncoder(COLUMNS, null_value=null_value)
    got = native.encode([Lines.of(raws)])
    # the C is sure of fewer doubles (1e-7, 1e22, "2.50"): the full query maps those
    assert (native.typed_batches, native.split_batches) == ((0, 1) if way == "typed"
                                                            else (1, 0))
    assert got.rows == python.encode([(records, False)])
    assert b"2023-11-14T22:13:20.123456789Z,1700000000123,1700000000123456789," in got.rows
    native.close()


def encode_both(native: NativeCsvEncoder, batch: list[bytes]) -> None:
    """The native encoder's rows and dead letters are the per-record encoder's."""
    python = CsvEncoder(COLUMNS)
    want = python.encode([([orjson.loads(r) for r in batch], False)])
    got = native.encode([Lines.of(batch)])
    assert (got.rows, got.rejected) == (want, python.rejected)


CLEAN = [orjson.dumps({"e": {"t": f"2024-01-01T10:00:{i % 60:02d}Z"}, "d": i, "txt": f"r{i}"})
         for i in range(70)]


@pytest.mark.parametrize("way", WAYS)
def test_a_value_it_does_not_read_goes_to_the_full_query(way: str) -> None:
    native = native_encoder(COLUMNS, way)
    # the typed query leaves the record out: the full query maps that one
    for odd in ({"d": "n/a"}, {"e": {"t": "2024-01-01T10:00+02"}}, {"txt": {"an": "object"}}):
        encode_both(native, [*CLEAN, orjson.dumps(odd)])
    assert (native.typed_batches, native.split_batches) == (0, 3)
    # a path through a value of another kind fails the typed query: the whole batch
    # (the C: unsure of that record only; an array's item it does not read is no matter)
    for odd in ({"x": "not a list"}, {"x": [1, {"i": 2}]}):
        encode_both(native, [*CLEAN, orjson.dumps(odd)])
    assert (native.typed_batches, native.split_batches) == ((1, 4) if way == "typed"
                                                            else (0, 3))
    native.close()


@pytest.mark.parametrize("way", WAYS)
def test_records_left_out_keep_their_places_and_indexes(way: str) -> None:
    native = native_encoder(COLUMNS, way)
    batch = list(CLEAN)
    # first, last, neighbours; rejected ("n/a", a bad date) and converted ("+5", a
    # +0200 zone, a fractional epoch) alike
    for index, odd in ((0, {"d": "n/a"}), (1, {"x": [{}, {"i": "+5"}]}),
                       (2, {"e": {"t": "2024-02-30T00:00:00Z"}}), (35, {"s": 1.5}),
                       (36, {"e": {"t": "2024-01-01T10:00:00+0200"}}), (69, {"d": "x"})):
        batch[index] = orjson.dumps({**orjson.loads(batch[index]), **odd})
    encode_both(native, batch)
    assert native.split_batches == 1
    native.close()


@pytest.mark.parametrize("way", WAYS)
def test_a_cell_holding_a_line_end_sends_the_batch_to_the_full_query(way: str) -> None:
    # the typed query's rows can then not be told apart without parsing the CSV
    native = native_encoder(COLUMNS, way)
    batch = [*CLEAN, orjson.dumps({"txt": "two\r\nlines"}), orjson.dumps({"d": "n/a"})]
    encode_both(native, batch)
    # (the C is unsure of a cell with a line end: the per-record encoder's row)
    assert native.split_batches == (1 if way == "typed" else 0)
    native.close()


@pytest.mark.parametrize("way", WAYS)
def test_mostly_values_it_does_not_read_send_the_batch_to_the_full_query(way: str) -> None:
    native = native_encoder(COLUMNS, way)
    encode_both(native, [orjson.dumps({"s": i + 0.5, "d": i}) for i in range(70)])
    assert (native.typed_batches, native.split_batches) == (0, 0)
    native.close()
