"""A stage of one column is encoded natively (it was per record, about 1.0x the
tight loop for `{"a":N}` records): its rows are the per-record encoder's, a row of
one empty cell `""` (Python's csv; an empty line would be no row), whatever the
column (plain, mapped, the whole record) and the dialect."""

from __future__ import annotations

import orjson
import pytest

from streamer.core.lines import Lines
from streamer.sinks.stage.csv_native import NativeEncodeError, native_available
from streamer.sinks.stage.csv_python import CsvEncoder
from tests.helpers.c_functions import WAYS, native_encoder

RAWS = [b'{}', b'{"a":""}', b'{"a":null}', b'{"a":1}', b'{"a":"x,y"}', b'{"a":"\\"q"}',
        b'{"b":2}', b'{"a":{"b":7}}', b'{"a":[1,""]}', b'{"a":"\\\\N"}', b'{"a":"NULL"}',
        b'{"a":-0.5}', b'{"a":true}']
COLUMNS = [
    ["a"],
    [{"name": "n", "from": "a", "type": "string"}],
    [{"name": "n", "from": "a.b", "type": "integer", "default": 0}],
    [{"name": "raw", "from": ".", "type": "json"}],
    [{"name": "c", "value": "k"}],
]
DIALECTS = [{}, {"null_value": "\\N"}, {"separator": ";", "quote": "'", "null_value": "NULL"}]


# a plain column has no mapping, so no C parts to hide: one way
CASES = [(columns, way) for columns in COLUMNS for way in (WAYS if columns != ["a"] else WAYS[-1:])]


@pytest.mark.parametrize("dialect", DIALECTS, ids=repr)
@pytest.mark.parametrize(("columns", "way"), CASES, ids=repr)
def test_one_column_rows_are_the_per_record_rows(columns, way, dialect) -> None:
    assert native_available(columns)
    python = CsvEncoder(columns, **dialect)
    native = native_encoder(columns, way, **dialect)
    try:
        for raws in (RAWS, [b'{}'], [b'{"a":""}', b'{}']):
            want = python.encode([([orjson.loads(r) for r in raws], False)])
            try:
                got = native.encode([Lines.of(raws)])
            except NativeEncodeError as exc:  # a batch left per record: never here
                pytest.fail(f"refused: {exc}")
            assert (got.rows, got.rejected) == (want, python.rejected)
    finally:
        native.close()
