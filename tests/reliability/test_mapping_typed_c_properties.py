"""The mapping's typed encoder in C sends what it is not sure of to the SQL (issue
#18): over batches of records at each proof's edge, one character changed
(tests/unit/mapping/test_typed_c.py), the native encoder's bytes and dead letters
are the per-record encoder's, the C's rows and the full query's put back in place."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.core.lines import Lines
from streamer.sinks.stage.csv_native import NativeEncodeError
from streamer.sinks.stage.csv_python import CsvEncoder
from tests.helpers.c_functions import WAYS, native_encoder
from tests.helpers.mapping_strategies import CSV_DIALECTS
from tests.unit.mapping.test_typed_c import COLUMNS, decodes, edited_records, plan_rows


@pytest.fixture(scope="module", params=CSV_DIALECTS, ids=repr)
def encoders(request):
    separator, quote, null_value = request.param
    options = {"separator": separator, "quote": quote, "null_value": null_value}
    native = native_encoder(COLUMNS, "typed", **options)
    assert native.typed_c is not None
    yield CsvEncoder(COLUMNS, **options), native
    native.close()


def repeated_key(raw: bytes) -> bool:
    """Whether an object of the record holds a key twice: the SQL reads a repeated
    key's first value, the per-record encoder its last.  A batch whose typed query
    DuckDB refuses for it goes per record (below); one the typed query cannot read
    for another reason first (e.g. a path through a value of another kind) is the
    full query's (docs/configuration.md, "Known limit")."""
    def pairs(items: list[tuple[str, object]]) -> dict:
        keys = [key for key, _ in items]
        if len(set(keys)) != len(keys):
            raise ValueError("a key twice")
        return dict(items)
    try:
        json.loads(raw, object_pairs_hook=pairs)
    except ValueError:
        return True
    return False


def native_or_per_record(native, python: CsvEncoder, raws: list[bytes]) -> bytes:
    """The native encoder's rows, or the per-record encoder's for a batch it leaves
    to it (as the sink does): only a batch with a repeated key may be left."""
    try:
        return native.encode([Lines.of(raws)]).rows
    except NativeEncodeError:
        assert any(map(repeated_key, raws))
        return python.encode([([orjson.loads(r) for r in raws], False)])


@pytest.mark.parametrize("way", WAYS)
def test_a_repeated_mapped_key_has_its_last_value_as_per_record(way: str) -> None:
    """The SQL reads a repeated key's first value, orjson its last: a batch the C
    is unsure of for a repeated mapped key is never the full query's."""
    columns = [{"name": "req", "from": "r", "type": "integer"}, "x"]
    raws = [b'{"r":0,"x":"a","r":2}', b'{"r":1,"x":"b"}', b'{"r":3,"x":"c"}']
    native = native_encoder(columns, way)
    try:
        got = native_or_per_record(native, CsvEncoder(columns), raws)
    finally:
        native.close()
    assert got == b"2,a\r\n1,b\r\n3,c\r\n"


def no_repeated_key(raw: bytes) -> bool:
    return not repeated_key(raw)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(raws=st.lists(edited_records().filter(decodes).filter(no_repeated_key), min_size=1,
                     max_size=40))
def test_unsure_records_go_to_the_sql_with_the_same_bytes_and_dead_letters(encoders,
                                                                          raws) -> None:
    python, native = encoders
    want = python.encode([([orjson.loads(r) for r in raws], False)])
    before = native.c_batches
    got = native.encode([Lines.of(raws)])
    assert (got.rows, got.rejected) == (want, python.rejected)
    _, unsure = plan_rows(COLUMNS, raws)
    if len(unsure) <= len(raws) // 2:  # else the batch is the SQL's
        assert native.c_batches == before + 1
