"""The column mapping's rules in Python (paths, types, timestamps, config errors)
and the same rules in DuckDB on the cases that name them."""

from __future__ import annotations

import orjson
import pytest

from streamer.config.root import ConfigError, parse_config
from streamer.core.lines import Lines
from streamer.mapping.paths import json_path, parse_path, show_path
from streamer.mapping.spec import ColumnSpec
from streamer.mapping.timestamps import TextParser, epoch_ns, render
from streamer.mapping.values import Bad, RecordMapper
from streamer.sinks.stage.csv_python import CsvEncoder
from tests.helpers.c_functions import WAYS, native_encoder


def test_paths_reach_into_objects_and_arrays() -> None:
    assert parse_path("user.id") == ("user", "id")
    assert parse_path("items[0].sku") == ("items", 0, "sku")
    assert parse_path('["a.b"].c[12]') == ("a.b", "c", 12)
    assert parse_path(".") == ()
    assert show_path(("a.b", "c", 0)) == '["a.b"].c[0]'
    assert json_path(("a", 1, 'q"x')) == '$."a"[1]."q\\"x"'
    for bad in ("", "a..b", "[0]", "a.", "a[x]", "a b"):
        with pytest.raises(ValueError):
            parse_path(bad)


@pytest.mark.parametrize(("text", "iso", "ms"), [
    ("2024-02-29T23:59:59.123456789+05:30", "2024-02-29T18:29:59.123456789Z", 1709231399123),
    ("2024-02-29", "2024-02-29T00:00:00Z", 1709164800000),
    ("1969-12-31T23:59:59.9Z", "1969-12-31T23:59:59.900Z", -100),
    ("1970-01-01 00:00:00.000001-00:01", "1970-01-01T00:01:00.000001Z", 60000),
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z", -62135596800000),
    ("9999-12-31T23:59:59,999999999", "9999-12-31T23:59:59.999999999Z", 253402300799999),
    ("2000-01-01T12:00+0130", "2000-01-01T10:30:00Z", 946722600000),
])
def test_iso8601_times_are_exact(text: str, iso: str, ms: int) -> None:
    ns = TextParser("iso8601")(text)
    assert render(ns, "iso8601") == iso
    assert render(ns, "epoch_ms") == ms


@pytest.mark.parametrize(("text", "reason"), [
    ("2023-02-29", "not a valid date or time"),
    ("2024-01-01T24:00:00Z", "not a valid date or time"),
    ("2024-01-01T10:00:00+24:00", "not a valid date or time"),
    ("0001-01-01T00:00:00+00:01", "timestamp out of range"),
    ("2024-01-01T10:00:00.1234567890Z", "not a timestamp in the parse format"),
    ("2024-1-01", "not a timestamp in the parse format"),
    ("yesterday", "not a timestamp in the parse format"),
])
def test_bad_iso8601_times_say_why(text: str, reason: str) -> None:
    assert TextParser("iso8601")(text) == reason


def test_epoch_numbers_are_exact_and_floored() -> None:
    assert epoch_ns("1700000000123456789", 0) == 1700000000123456789
    assert epoch_ns("1700000000.123456789", 9) == 1700000000123456789
    assert epoch_ns("-1.5", 9) == -1_500_000_000
    assert epoch_ns("1.7e9", 9) == 1_700_000_000 * 10**9
    assert epoch_ns("-0.0000000001", 9) == -1  # below a ns: floored
    assert render(-1, "epoch_s") == -1 and render(-1, "epoch_ns") == -1
    assert epoch_ns("1e30", 9) == "timestamp out of range"
    assert epoch_ns("12ab", 9) == "not an epoch number"


def test_strptime_patterns_compile_to_the_same_rules() -> None:
    clf = TextParser("%d/%b/%Y:%H:%M:%S %z")
    assert render(clf("10/Oct/2000:13:55:36 -0700"), "iso8601") == "2000-10-10T20:55:36Z"
    assert clf("10/Foo/2000:13:55:36 -0700") == "not a timestamp in the parse format"
    with pytest.raises(ValueError, match="%q is not supported"):
        TextParser("%Y %q")
    with pytest.raises(ValueError, match="needs %Y"):
        TextParser("%H:%M")


def mapper(*columns: object) -> RecordMapper:
    return RecordMapper([ColumnSpec.model_validate(c) for c in columns])


def test_values_convert_or_say_which_column_and_why() -> None:
    m = mapper({"name": "id", "from": "user.id", "type": "integer"},
               {"name": "t", "from": "ts", "type": "timestamp", "format": "epoch_s"},
               {"name": "host", "value": "h1"},
               {"name": "tag", "from": "tags[1]", "default": "none"})
    assert m.values({"user": {"id": "42"}, "ts": "2024-01-01T00:00:00Z", "tags": [1, "x"]}) \
        == [42, 1704067200, "h1", "x"]
    # missing (absent or null, at any step) is the default or empty, never bad
    assert m.values({"user": None, "tags": [1]}) == [None, None, "h1", "none"]
    for record, reason in [
        ({"user": {"id": "n/a"}}, "column id: not an integer"),
        ({"user": {"id": 2**63}}, "column id: integer out of range"),
        ({"user": {"id": 1.5}}, "column id: not an integer"),
        ({"user": "bob"}, "column id: path through a non-object at user"),
        ({"ts": "soon"}, "column t: not a timestamp in the parse format"),
        ({"tags": {"1": 2}}, "column tag: path through a non-array at tags"),
    ]:
        with pytest.raises(Bad, match=f"^{reason}$"):
            m.values(record)


def test_required_makes_a_missing_value_bad() -> None:
    m = mapper({"name": "n", "type": "integer", "required": True}, "x")
    with pytest.raises(Bad, match="column n: missing value"):
        m.values({"n": None})


BAD_AND_GOOD = [
    {"a": 1, "user": {"id": 7}, "ts": "2024-02-29T10:00:00.5+01:00", "v": "1.5", "ok": "true"},
    {"a": 2, "user": {"id": "n/a"}, "ts": "2024-02-29T10:00:00Z"},
    {"a": 3, "user": {"id": 8}, "ts": "2023-02-29T10:00:00Z"},
    {"a": 4, "user": "x"},
    {"a": {"n": [1, 2]}, "user": {"id": 9.0}, "ts": None, "v": 2, "ok": False},
] * 20  # past the native encoder's minimum batch


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("null_value", ["", "\\N"])
def test_native_and_per_record_encoders_give_the_same_rows_and_rejects(null_value, way) -> None:
    columns = ["a", {"name": "uid", "from": "user.id", "type": "integer"},
               {"name": "ms", "from": "ts", "type": "timestamp", "format": "epoch_ms"},
               {"name": "v", "type": "double", "default": 0},
               {"name": "ok", "type": "boolean"}, {"name": "src", "value": "s1"}]
    raws = [orjson.dumps(r) for r in BAD_AND_GOOD]
    python = CsvEncoder(columns, null_value=null_value)
    rows = python.encode([(list(map(orjson.loads, raws)), False)])
    native = native_encoder(columns, way, null_value=null_value)
    try:
        got = native.encode([Lines.of(raws)])
    finally:
        native.close()
    assert got.rows == rows
    assert got.rejected == python.rejected
    null = null_value
    assert rows.split(b"\r\n")[:2] == [
        b"1,7,1709197200500,1.5,true,s1",
        f'"{{""n"":[1,2]}}",9,{null},2.0,false,s1'.encode()]
    assert got.rejected[:3] == [(1, "column uid: not an integer"),
                                (2, "column ms: not a valid date or time"),
                                (3, "column uid: path through a non-object at user")]
    assert len(got.rejected) == 60


def config_problems(columns: list) -> list[str]:
    cfg = {"data_dir": "/tmp/streamer-map-test", "sources": {"in": {"type": "stdin"}},
           "sinks": {"st": {"type": "stage", "url": "file:///tmp/streamer-map-test/st",
                            "columns": columns}}}
    with pytest.raises(ConfigError) as info:
        parse_config(cfg)
    return info.value.problems


def test_check_names_the_key_path_of_a_bad_column() -> None:
    problems = config_problems([
        "a", {"name": "b", "type": "nope"}, {"name": "c", "type": "timestamp", "parse": "%Q"},
        {"name": "d", "from": "a..b"}, {"name": "e", "type": "integer", "default": "x"},
        {"name": "f", "format": "epoch_s"}, {"name": "g", "from": "x", "value": 1},
        {"name": "h", "unknown": 1}])
    assert problems[0].startswith("sinks.st.columns[1].type: Input should be")
    assert problems[1].startswith("sinks.st.columns[2].parse: parse pattern '%Q'")
    assert problems[2] == "sinks.st.columns[3].from: path 'a..b': a key must follow '.' at 2"
    assert problems[3] == "sinks.st.columns[4].default: not an integer"
    assert problems[4] == 'sinks.st.columns[5]: format is for type = "timestamp" only'
    assert problems[5] == "sinks.st.columns[6]: set from or value, not both"
    assert problems[6].startswith("sinks.st.columns[7].unknown: Extra inputs")
    assert config_problems(["a", {"name": "a", "type": "integer"}]) == [
        "sinks.st.columns: duplicate columns: a"]


def test_a_plain_name_is_todays_column_and_sql_type_names_are_taken() -> None:
    plain = ColumnSpec.model_validate("a.b")
    assert plain.plain and plain.steps == ("a.b",) and plain.type == "raw"
    assert ColumnSpec.model_validate({"name": "x", "type": "BIGINT"}).type == "integer"
