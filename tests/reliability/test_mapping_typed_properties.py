"""The mapping's typed query (sql_typed.py, one read of the JSON and a few casts)
writes what the per-record encoder writes (issue #18): over generated batches of
values in the forms it reads (ISO 8601 with and without zones and fractions of
1-9 digits, leap days, pre-1970, years 1 and 9999; epoch integers of every unit;
every double; strings with any character) it is the query that runs, and its
bytes are the per-record encoder's; a batch with one value of another form goes
to the full mapping query (that record only, or the whole batch when the typed
query fails) with the same bytes and dead letters."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.lines import Lines
from tests.helpers.mapping_strategies import (
    DIALECTS_AND_WAYS,
    encoder_pair,
    fractions,
    ints64,
    moments,
    per_record_rows,
    texts,
)

COLUMNS = [
    "s",
    {"name": "user_id", "from": "user.id", "type": "integer"},
    {"name": "user_name", "from": "user.name", "type": "string", "default": "anon"},
    {"name": "ts_ms", "from": "event.time", "type": "timestamp", "format": "epoch_ms"},
    {"name": "ts_iso", "from": "event.time", "type": "timestamp"},
    {"name": "ts_ns", "from": "event.time", "type": "timestamp", "format": "epoch_ns"},
    {"name": "ts_s", "from": "event.time", "type": "timestamp", "format": "epoch_s"},
    {"name": "ts_us", "from": "event.time", "type": "timestamp", "format": "epoch_us"},
    {"name": "e_s_ns", "from": "epoch.s", "type": "timestamp", "parse": "epoch_s",
     "format": "epoch_ns"},
    {"name": "e_s_iso", "from": "epoch.s", "type": "timestamp", "parse": "epoch_s"},
    {"name": "e_s_ms", "from": "epoch.s", "type": "timestamp", "parse": "epoch_s",
     "format": "epoch_ms"},
    {"name": "e_ms_iso", "from": "epoch.ms", "type": "timestamp", "parse": "epoch_ms"},
    {"name": "e_ms_s", "from": "epoch.ms", "type": "timestamp", "parse": "epoch_ms",
     "format": "epoch_s"},
    {"name": "e_us_iso", "from": "epoch.us", "type": "timestamp", "parse": "epoch_us"},
    {"name": "e_ns_us", "from": "epoch.ns", "type": "timestamp", "parse": "epoch_ns",
     "format": "epoch_us"},
    {"name": "e_ns_iso", "from": "epoch.ns", "type": "timestamp", "parse": "epoch_ns"},
    {"name": "second_tag", "from": "tags[1]", "type": "string"},
    {"name": "deep", "from": "a.b[0].c", "type": "string", "default": "-"},
    {"name": "d", "type": "double"},
    {"name": "d_default", "from": "dd", "type": "double", "default": 1.5},
    {"name": "b", "type": "boolean"},
    {"name": "n", "from": "n", "type": "integer", "required": True},
    {"name": "host", "value": "h-1"},
    {"name": "odd key", "from": '["x.y"]', "type": "string"},
    {"name": "quoted", "from": '["a\\"b"].c', "type": "integer"},
]

scalar_text = texts(8).filter(lambda t: not t.startswith(("{", "[")))
doubles = st.floats(allow_nan=False, allow_infinity=False) | ints64


@st.composite
def fast_iso_texts(draw) -> str:
    moment = draw(moments(datetime(1, 1, 2), datetime(9999, 12, 30),
                          [datetime(1969, 12, 31, 23, 59, 59)]))
    text = moment.strftime("%Y-%m-%d").rjust(10, "0") + draw(st.sampled_from("T "))
    text += moment.strftime("%H:%M:%S") + draw(fractions())
    zone = draw(st.sampled_from(["", "Z", "+", "-"]))
    if zone in "+-" and zone:
        zone += f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
    return text + zone


def epochs(unit_ns: int) -> st.SearchStrategy[int]:
    low, end = -62135596800 * 10**9 // unit_ns, 253402300800 * 10**9 // unit_ns
    bounded = st.integers(max(low, -(2**63)), min(end - 1, 2**63 - 1))
    return bounded | st.sampled_from([0, -1, 1, max(low, -(2**63)), min(end - 1, 2**63 - 1)])


def clean_records() -> st.SearchStrategy[dict]:
    maybe = st.none
    return st.fixed_dictionaries({
        "s": scalar_text | ints64 | st.booleans() | st.floats(allow_nan=False,
                                                            allow_infinity=False) | maybe(),
        "user": st.fixed_dictionaries({"id": ints64 | ints64.map(str) | maybe()},
                                      optional={"name": scalar_text | maybe()}) | maybe(),
        "event": st.fixed_dictionaries({"time": fast_iso_texts() | maybe()}),
        "epoch": st.fixed_dictionaries({"s": epochs(10**9), "ms": epochs(10**6),
                                        "us": epochs(10**3), "ns": epochs(1)}),
        "tags": st.lists(scalar_text | ints64, max_size=3) | maybe(),
        "a": st.fixed_dictionaries({"b": st.lists(st.fixed_dictionaries(
            {"c": scalar_text | maybe()}), max_size=2)}) | maybe(),
        "d": doubles | doubles.map(repr) | maybe(),
        "b": st.booleans() | st.sampled_from(["true", "false"]) | maybe(),
        "n": ints64,
        "x.y": scalar_text,
    # (a key with an escape, `a\"b`: the C typed encoder is unsure of the record)
    }, optional={"dd": doubles, 'a"b': st.fixed_dictionaries({"c": ints64})})


odd_values = st.sampled_from([
    {"n": None}, {"n": "+5"}, {"n": 1.5}, {"n": "007"}, {"d": " 1"},
    {"d": "inf"}, {"b": "yes"}, {"s": {"k": 1}}, {"s": "{not json"}, {"user": 5},
    {"event": {"time": "2024-02-30T00:00:00Z"}}, {"event": {"time": "2024-01-01T24:00:00Z"}},
    {"event": {"time": "2024-01-01T10:00+02"}}, {"event": {"time": "0001-01-01T00:00:00+01:00"}},
    {"epoch": {"s": 1.5}}, {"epoch": {"s": "17e8"}}, {"epoch": {"ms": 10**18}},
    {"tags": "x"}, {"a": {"b": {"0": 1}}}, {"user": {"id": 2**63}},
])


@st.composite
def batches(draw) -> tuple[list[dict], bool]:
    """Records, and whether one holds a value of another form."""
    batch = draw(st.lists(clean_records(), min_size=1, max_size=80))
    odd = draw(st.booleans())
    if odd:  # the batch falls back to the full query
        batch[draw(st.integers(0, len(batch) - 1))].update(draw(odd_values))
    return batch, odd


@pytest.fixture(scope="module", params=DIALECTS_AND_WAYS, ids=repr)
def encoders(request):
    python, native = encoder_pair(COLUMNS, *request.param)
    seen = {"clean": 0, "odd": 0}
    yield python, native, seen
    native.close()
    assert seen["clean"] >= 10
    # typed rows and the full query's put together (about 1 odd value in 7 fails
    # the typed query and sends the whole batch to the full one)
    assert native.split_batches >= seen["odd"] // 3


@settings(max_examples=40, deadline=None)
@given(batch=batches())
def test_typed_query_writes_the_per_record_rows(encoders, batch) -> None:
    python, native, seen = encoders
    records, odd = batch
    raws = [orjson.dumps(r) for r in records]
    want = per_record_rows(python, raws)
    before, c_before = native.typed_batches, native.c_batches
    got = native.encode([Lines.of(raws)])
    assert got.rejected == python.rejected
    assert got.rows == want
    seen["odd"] += odd
    if not odd:
        seen["clean"] += 1
        if native.typed_c is not None:
            # the C typed them (the rest per record or by the queries: 1e22, `a\"b`...),
            # or the typed query all when the C was unsure of more than half
            assert native.c_batches == c_before + 1 or native.typed_batches == before + 1
        else:
            assert native.typed_batches == before + 1  # the typed query was sure of them all

