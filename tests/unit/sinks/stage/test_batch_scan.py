"""The byte scans that let the plain native query skip its checks (no nested
value) and its NULLIF (no empty string): never "no" where the answer is yes, on
JSON text in every spelling; the encoder's bytes stay the per-record encoder's
on either side of each answer."""

import subprocess
import sys

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.lines import Lines
from streamer.sinks.stage import batch_scan
from streamer.sinks.stage.batch_scan import (
    may_hold_empty_string_by_hyperscan,
    may_nest_by_count,
    may_nest_by_hyperscan,
    no_empty_string,
)
from streamer.sinks.stage.csv_native import NativeCsvEncoder
from streamer.sinks.stage.csv_python import CsvEncoder, is_plain
from tests.fixtures.processes import REPO

MAY_NEST = [may_nest_by_hyperscan, may_nest_by_count]

# JSON whitespace a line may hold (a line holds no LF)
space = st.sampled_from(["", "", " ", "\t", "\r", " \t", "\r\n"[:1] + " "])
string_text = (st.text(st.characters(blacklist_categories=("Cs",)), max_size=6).map(
    lambda t: orjson.dumps(t).decode())
    | st.sampled_from(['""', '"\\""', '"\\\\"', '"x\\""', '"\\"\\""', '"{"', '"["',
                       '": {"', '"\\u0022\\u0022"', '"a\\\\\\""']))
scalar_text = string_text | st.sampled_from(["1", "-2.5e3", "true", "false", "null"])


def _array(items: list[str], pad: str) -> str:
    return "[" + pad + ("," + pad).join(items) + pad + "]"


def _object(pairs: list[tuple[str, str]], pad: str) -> str:
    return "{" + pad + ("," + pad).join(f"{k}{pad}:{pad}{v}" for k, v in pairs) + pad + "}"


value_text = st.recursive(
    scalar_text,
    lambda children: st.builds(_array, st.lists(children, max_size=3), space)
    | st.builds(_object, st.lists(st.tuples(string_text, children), max_size=3), space),
    max_leaves=6)
record_text = st.builds(_object, st.lists(st.tuples(string_text, value_text), max_size=5),
                        space)


def _nested(record: dict) -> bool:
    return any(type(value) in (dict, list) for value in record.values())


def _has_empty_string(value: object) -> bool:
    if value == "":
        return True
    if type(value) is dict:
        return any(map(_has_empty_string, [*value.keys(), *value.values()]))
    if type(value) is list:
        return any(map(_has_empty_string, value))
    return False


def _forms(raws: list[bytes]) -> list[tuple[Lines, list[bytes]]]:
    """The records as a block and as a list of lines, with the buffers the
    encoder writes for each."""
    block = b"".join(raw + b"\n" for raw in raws)
    forms = [Lines.of_block(block, len(raws), max(map(len, raws))), Lines.of(raws)]
    return [(lines, list(lines.ndjson())) for lines in forms]


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(record_text, min_size=1, max_size=6))
def test_a_batch_with_a_nested_value_or_an_empty_string_is_never_cleared(lines):
    raws = [line.encode() for line in lines]
    records = [orjson.loads(raw) for raw in raws]
    nested = any(map(_nested, records))
    empty = any(map(_has_empty_string, records))
    for lines_, buffers in _forms(raws):
        for may_nest in MAY_NEST:
            assert may_nest([lines_], buffers) or not nested
        assert may_hold_empty_string_by_hyperscan(buffers) or not empty


@pytest.mark.parametrize("may_nest", MAY_NEST)
@pytest.mark.parametrize("raw", [b'{"a":{}}', b'{"a": [1]}', b'{"a":\t{"b":1}}',
                                 b'{"a":\r[]}', b'{"x":1, "a" :  {"b":[]}}'])
def test_a_nested_value_after_any_whitespace_is_seen(may_nest, raw):
    for lines, buffers in _forms([b'{"a":1}', raw]):
        assert may_nest([lines], buffers)


@pytest.mark.parametrize("may_nest", MAY_NEST)
def test_flat_records_are_cleared_of_nesting(may_nest):
    raws = [b'{"a":1,"b":"x","c":null}', b'{ "a" : 2.5 , "b" : "say \\"hi\\"" }\r']
    for lines, buffers in _forms(raws):
        assert not may_nest([lines], buffers)


@pytest.mark.parametrize("raw", [b'{"a":""}', b'{"a": ""}', b'{"":1}', b'{"a":{"b":""}}',
                                 b'{"a":["x",""]}', b'{"a":"\\\\","b":""}'])
def test_an_empty_string_anywhere_is_seen(raw):
    for _lines, buffers in _forms([b'{"a":1}', raw]):
        assert may_hold_empty_string_by_hyperscan(buffers)


def test_an_escaped_quote_ending_a_string_is_not_an_empty_string():
    raws = [b'{"a":"\\""}', b'{"a":"x\\"","b":"\\\\"}', b'{"a":"\\"\\""}']
    for lines, buffers in _forms(raws):
        assert not may_hold_empty_string_by_hyperscan(buffers)
        assert no_empty_string([lines], buffers, columns=2)


def test_wide_cells_are_not_scanned_for_empty_strings(monkeypatch):
    """Past EMPTY_SCAN_MAX_CELL_BYTES a cell the scan would cost more than the
    NULLIF it may save: the answer is "maybe" without it."""
    monkeypatch.setattr(batch_scan, "may_hold_empty_string", lambda _: pytest.fail("scanned"))
    raw = orjson.dumps({"a": "x" * 200, "b": 1})
    lines, buffers = _forms([raw])[0]
    assert not no_empty_string([lines], buffers, columns=2)


def test_the_scans_are_hyperscan_where_it_is_installed():
    assert batch_scan.may_nest is may_nest_by_hyperscan
    assert batch_scan.may_hold_empty_string is may_hold_empty_string_by_hyperscan


def test_without_hyperscan_nesting_is_counted_and_empty_strings_assumed():
    code = ("import sys; sys.modules['hyperscan'] = None\n"
            "from streamer.sinks.stage import batch_scan as b\n"
            "from streamer.core.lines import Lines\n"
            "assert b.may_nest is b.may_nest_by_count\n"
            "lines = Lines.of([b'{\"a\":\"x\"}'])\n"
            "assert not b.no_empty_string([lines], list(lines.ndjson()), 1)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("null_value", ["", "\\N"])
def test_batches_on_either_side_of_each_scan_are_the_per_record_bytes(null_value):
    """One encoder, batches in turn with and without empty strings and nested
    values (each a query of its own, prepared once): the per-record bytes."""
    columns = ["a", "b", "c"]
    native = NativeCsvEncoder(columns, null_value=null_value)
    python = CsvEncoder(columns, null_value=null_value)
    flat = [{"a": i, "b": f"s{i}", "c": None if i % 3 else 1.5} for i in range(100)]
    empty = [dict(r, b="" if i % 7 == 0 else r["b"]) for i, r in enumerate(flat)]
    nested = [dict(r, c={"k": [i, ""]} if i % 5 == 0 else r["c"]) for i, r in enumerate(flat)]
    quoted = [dict(r, b='say "x"') for r in flat]
    try:
        for batch in (flat, empty, flat, nested, quoted, empty, flat):
            raws = [orjson.dumps(r) for r in batch]
            want = python.encode([(batch, is_plain(raws))])
            for lines, _buffers in _forms(raws):
                assert native.encode([lines]).rows == want
    finally:
        native.close()
    assert b'""' not in want and want.count(b"\r\n") == 100
