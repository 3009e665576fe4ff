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


@pytest.mark.parametrize("null_value", ["", "NULL"])
def test_values_it_reads_give_the_per_record_cells(null_value: str) -> None:
    records = [{"e": {"t": t}, "s": s, "ms": ms, "d": d, "x": x, "b": b, "txt": txt}
               for t, s, ms, d, x, b, txt in zip(
                   TIMES * 10, [0, -1, 1700000000, -62135596800, 253402300799, None, 5] * 10,
                   [-1, 1, 1700000000123, 999, -62135596800000, 0, None] * 10,
                   [1, 1.5, "2.50", 1e-7, 1e22, -0.0, None] * 10,
                   [[{}, {"i": 5}], [], None, [{"i": "-12"}], [None, {"i": None}], [], []] * 10,
                   [True, "false", None, False, "true", None, True] * 10,
                   ["a,b", 'q"', "", "é\n", 7, 1.25, None] * 10, strict=True)]
    raws = [orjson.dumps(r) for r in records]
    native = NativeCsvEncoder(COLUMNS, null_value=null_value)
    python = CsvEncoder(COLUMNS, null_value=null_value)
    got = native.encode([Lines.of(raws)])
    assert native.typed_batches == 1
    assert got.rows == python.encode([(records, False)])
    assert b"2023-11-14T22:13:20.123456789Z,1700000000123,1700000000123456789," in got.rows
    native.close()


def test_a_value_it_does_not_read_sends_the_batch_to_the_full_query() -> None:
    raws = [orjson.dumps({"e": {"t": "2024-01-01T10:00:00Z"}, "d": 1})] * 70
    native = NativeCsvEncoder(COLUMNS)
    for odd in ({"d": "n/a"}, {"e": {"t": "2024-01-01T10:00+02"}}, {"x": "not a list"},
                {"x": [1, {"i": 2}]}, {"txt": {"an": "object"}}):
        batch = [*raws, orjson.dumps(odd)]
        python = CsvEncoder(COLUMNS)
        want = python.encode([([orjson.loads(r) for r in batch], False)])
        got = native.encode([Lines.of(batch)])
        assert (got.rows, got.rejected) == (want, python.rejected)
    assert native.typed_batches == 0
    native.close()
