"""The mapping's typed encoder in C sends what it is not sure of to the SQL (issue
#18): over batches of records at each proof's edge, one character changed
(tests/unit/mapping/test_typed_c.py), the native encoder's bytes and dead letters
are the per-record encoder's, the C's rows and the full query's put back in place."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.core.lines import Lines
from streamer.sinks.stage.csv_python import CsvEncoder
from tests.helpers.c_functions import native_encoder
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


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(raws=st.lists(edited_records().filter(decodes), min_size=1, max_size=40))
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
