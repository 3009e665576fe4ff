"""The mapping's typed encoder in C (mapping/typed_c.py, _typed.c): every row it writes
is the per-record encoder's, byte for byte, over the forms near each proof's edge
(numbers at the bounds, exponents, `-0`, trailing zeros, int64's ends, escapes in keys
and strings, a key twice, CSV specials, non-ASCII, paths through arrays, one-character
changes of valid records).  tests/reliability/test_mapping_typed_c_properties.py:
what it is not sure of goes to the SQL with the same final bytes and dead letters."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.mapping.spec import ColumnSpec
from streamer.mapping.typed_c import typed_plan
from streamer.sinks.stage.csv_python import CsvEncoder
from tests.helpers.mapping_strategies import CSV_DIALECTS

COLUMNS = [
    {"name": "text", "from": "v", "type": "string"},
    "v",  # raw
    {"name": "int", "from": "v", "type": "integer"},
    {"name": "dbl", "from": "v", "type": "double"},
    {"name": "bool", "from": "v", "type": "boolean", "default": False},
    {"name": "iso", "from": "v", "type": "timestamp"},
    {"name": "iso_ms", "from": "v", "type": "timestamp", "format": "epoch_ms"},
    {"name": "iso_ns", "from": "v", "type": "timestamp", "format": "epoch_ns"},
    {"name": "s_iso", "from": "v", "type": "timestamp", "parse": "epoch_s"},
    {"name": "ms_ns", "from": "v", "type": "timestamp", "parse": "epoch_ms",
     "format": "epoch_ns"},
    {"name": "ns_iso", "from": "v", "type": "timestamp", "parse": "epoch_ns"},
    {"name": "s_us", "from": "v", "type": "timestamp", "parse": "epoch_s",
     "format": "epoch_us"},
    {"name": "deep", "from": "a[1].b", "type": "string", "default": "d,\"q\""},
    {"name": "req", "from": "r", "type": "integer", "required": True},
    {"name": "odd key", "from": '["x.y"]', "type": "string"},
    {"name": "wide", "from": "é.ü", "type": "string"},
    {"name": "const", "value": "h,1"},
]
# each column alone, so that a value's sureness is its own column's
SINGLE = {c["name"] if isinstance(c, dict) else c: [c, {"name": "r2", "from": "r"}]
          for c in COLUMNS}

# JSON texts at each proof's edge
NUMBERS = [
    "0", "-0", "0.0", "-0.0", "1", "-1", "1.0", "1.5", "1.50", "10", "100.0", "1e5", "1E5",
    "1e+5", "1.5e-3", "0.0001", "0.00010", "0.00009999", "0.001234", "-0.0001",
    "99999999999999", "100000000000000", "99999999999999.5", "9999999999999.5",
    "12345678901234", "1234567890123.4", "0.1234567890123", "0.12345678901234",
    "123456789012.345", "1.7976931348623157e308", "5e-324",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "1700000000", "1700000000123",
    "-62135596800", "-62135596801", "253402300799", "253402300800", "-1",
]
STRINGS = [
    '""', '"a"', '"a,b"', '"q\\"q"', '"\\\\"', '"\\/"', '"tab\\tx"', '"cr\\rlf\\n"',
    '"\\u00e9"', '"é"', '"\\ud83d\\ude00"', '"😀"', '"\\u0000"', '"\\u001f"', '"\\u2028"',
    '"true"', '"false"', '"True"', '"12"', '"-0"', '"+12"', '"012"', '"1.5"', '"1.50"',
    '" 1"', '"1e3"', '"inf"', '"NaN"', '"9223372036854775807"', '"9223372036854775808"',
    '"2023-11-14T22:13:20Z"', '"2023-11-14 22:13:20.5+05:30"',
    '"2024-02-29T23:59:59.123456789-00:01"',
    '"2023-02-29T00:00:00Z"', '"0001-01-01T00:00:00Z"', '"0001-01-01T00:00:00+00:01"',
    '"9999-12-31T23:59:59.999999999Z"', '"9999-12-31T23:59:59-00:01"', '"2023-11-14T24:00:00Z"',
    '"2023-11-14T22:13:20+0000"', '"2023-11-14T22:13:20.Z"', '"2023-11-14T22:13:20.1234567890Z"',
    '"1969-12-31T23:59:59.9999999Z"', '"1700000000"', '"-1"', '"1700000000.5"',
]
OTHERS = ["true", "false", "null", "{}", '{"a":1}', "[]", "[1,2]"]
VALUES = NUMBERS + STRINGS + OTHERS


def records_of(values: list[str], extra: str = "") -> list[bytes]:
    return [f'{{"v":{v},"r":1{extra}}}'.encode() for v in values]


def plan_rows(columns: list[object], raws: list[bytes],
              dialect: tuple[str, str, str] = CSV_DIALECTS[0]) -> tuple[list[bytes], list[int]]:
    """The C plan's rows and unsure indexes over `raws`."""
    separator, quote, null_value = dialect
    plan = typed_plan([ColumnSpec.model_validate(c) for c in columns], null_value,
                      separator, quote)
    assert plan is not None
    csv, unsure, seen = plan.encode([b"\n".join(raws) + b"\n"])
    assert seen == len(raws)
    rows = csv.split(b"\r\n")
    assert rows.pop() == b""
    return rows, unsure


def python_rows(columns: list[object], raws: list[bytes],
                dialect: tuple[str, str, str] = CSV_DIALECTS[0]) -> list[bytes | None]:
    """The per-record encoder's row for each record (None: it rejects the record)."""
    separator, quote, null_value = dialect
    python = CsvEncoder(columns, separator=separator, quote=quote, null_value=null_value)
    rows = python.encode([([orjson.loads(r) for r in raws], False)]).split(b"\r\n")[:-1]
    rejected = {index for index, _ in python.rejected}
    out, taken = [], iter(rows)
    for index in range(len(raws)):
        out.append(None if index in rejected else next(taken))
    return out


def assert_sure_rows_exact(columns: list[object], raws: list[bytes],
                           dialect: tuple[str, str, str] = CSV_DIALECTS[0]) -> list[int]:
    """Every row the C writes is the per-record row of its record; its unsure indexes."""
    rows, unsure = plan_rows(columns, raws, dialect)
    want = python_rows(columns, raws, dialect)
    sure = [index for index in range(len(raws)) if index not in set(unsure)]
    assert len(rows) == len(sure)
    for index, row in zip(sure, rows, strict=True):
        assert want[index] is not None, (raws[index], row)  # never a record it rejects
        assert row == want[index], raws[index]
    return unsure


@pytest.mark.parametrize("name", list(SINGLE))
def test_each_column_sure_only_of_exact_cells(name: str) -> None:
    assert_sure_rows_exact(SINGLE[name], records_of(VALUES))


def test_what_it_is_sure_of() -> None:
    """The proofs' edges, decided as documented (typed_c.py): sure of the forms whose
    cell is the text itself, unsure of the rest."""
    def sure(column: str, values: list[str]) -> list[str]:
        _, unsure = plan_rows(SINGLE[column], records_of(values))
        return [v for i, v in enumerate(values) if i not in unsure]

    assert sure("dbl", NUMBERS) == [
        "0", "0.0", "-0.0", "1", "-1", "1.0", "1.5", "10", "100.0", "0.0001", "0.001234",
        "-0.0001", "99999999999999", "9999999999999.5", "12345678901234", "1234567890123.4",
        "0.1234567890123", "1700000000", "1700000000123", "-62135596800", "-62135596801",
        "253402300799", "253402300800", "-1"]
    integers = [*NUMBERS, '"12"', '"-0"', '"+12"', '"012"', '"9223372036854775807"']
    assert sure("int", integers) == [
        "0", "1", "-1", "10", "99999999999999", "100000000000000", "12345678901234",
        "9223372036854775807", "1700000000", "1700000000123", "-62135596800", "-62135596801",
        "253402300799", "253402300800", "-1", '"12"', '"9223372036854775807"']
    assert sure("text", ['"a"', '"q\\"q"', '"\\u0000"', '"\\ud83d\\ude00"', "-0", "1e5",
                         "1.50", "true", "{}", "null"]) == [
        '"a"', '"q\\"q"', '"\\ud83d\\ude00"', "true", "null"]
    assert sure("bool", ["true", "false", '"true"', '"True"', "1", "null"]) == [
        "true", "false", '"true"', "null"]
    # a key with an escape where a mapped key may be, a mapped key twice: unsure
    raws = [b'{"v":1,"r":1,"\\u0072":2}', b'{"v":1,"r":1,"r":2}',
            b'{"v":1,"r":1,"x":{"\\u0072":1}}', b'{ "v" : 1 , "r" : 1 }',
            b'{"v":1,"r":1} x', b'{"v":1,"r":1,}', b'[1]']
    _, unsure = plan_rows(SINGLE["int"], raws)
    assert unsure == [0, 1, 4, 5, 6]


@pytest.mark.parametrize("dialect", [*CSV_DIALECTS, ("0", ".", "N"), ("-", "1", "1")])
def test_paths_defaults_constants_and_dialects(dialect: tuple[str, str, str]) -> None:
    raws = [b'{"v":"a\\tb","r":1,"a":[{"b":"x"},{"b":"y,z"}],"x.y":"\'q\'",'
            b'"\xc3\xa9":{"\xc3\xbc":"w"}}',
            b'{"v":1.5,"r":2,"a":[{"b":1}]}', b'{"v":null,"r":3,"a":null,"\xc3\xa9":null}',
            b'{"v":-10,"r":4,"a":[null,{"c":1}]}', b'{"v":true,"r":5,"a":[1,{"b":"0.5"}]}',
            b'{"v":"2023-11-14T22:13:20.5Z","r":6,"a":[[],{"b":"-"}],"x.y":"\\"q\\""}',
            b'{"v":1,"r":null}', b'{"v":1}', b'{"v":1,"r":7,"a":{"1":{"b":"x"}}}',
            b'{"v":1,"r":8,"a":[1,"s"]}', b'{"v":1,"r":9,"\xc3\xa9":"s"}']
    unsure = assert_sure_rows_exact(COLUMNS, raws, dialect)
    # a missing required value, a path through another kind: the SQL's to reject
    assert {6, 7, 8, 9, 10} <= set(unsure)


# a valid record, then one character changed: inserted, deleted or replaced
EDIT_CHARS = [*'0123456789-+.eE"\\,:{}[] tfnaul/u', "\xe9", "\x7f"]


# a mapped key spelled with an escape, or twice
KEYS = ['"v"', '"v"', '"\\u0076"', '"\\u0056"']
EXTRA = ["", "", ',"r":2', ',"\\u0072":2', ',"v":true', ',"\\u0076":"x"', ',"x":{"\\u0076":1}']


@st.composite
def edited_records(draw) -> bytes:
    value = draw(st.sampled_from(VALUES))
    text = (f'{{{draw(st.sampled_from(KEYS))}:{value},"r":{draw(st.sampled_from(NUMBERS))},'
            f'"a":[0,{{"b":{value}}}]{draw(st.sampled_from(EXTRA))}}}')
    for _ in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(text)))
        change = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.sampled_from(EDIT_CHARS))
        if change == "insert":
            text = text[:position] + char + text[position:]
        elif change == "delete":
            text = text[:position] + text[position + 1:]
        else:
            text = text[:position] + char + text[position + 1:]
    return text.encode()


def decodes(raw: bytes) -> bool:
    """The records a batch can hold: orjson's objects, integers within 64 bits
    (core/ndjson.py dead-letters the others before any encoder)."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return type(record) is dict and b"\n" not in raw and b"\r" not in raw and all(
        -(2**63) <= int(v) < 2**64 for v in _integers(record))


def _integers(value: object) -> list[int]:
    if type(value) is int:
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [i for item in value for i in _integers(item)]
    return []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(raws=st.lists(edited_records().filter(decodes), min_size=1, max_size=30),
       dialect=st.sampled_from(CSV_DIALECTS), columns=st.sampled_from([*SINGLE, "all"]))
def test_one_character_changes_never_make_a_wrong_row(raws: list[bytes],
                                                      dialect: tuple[str, str, str],
                                                      columns: str) -> None:
    # one column of a type at a time (with all, most records are unsure of one)
    assert_sure_rows_exact(COLUMNS if columns == "all" else SINGLE[columns], raws, dialect)


def test_no_plan_for_what_it_does_not_handle() -> None:
    def plan(*columns: object, separator: str = ",", null_value: str = "") -> object:
        return typed_plan([ColumnSpec.model_validate(c) for c in columns], null_value,
                          separator)

    assert plan("a", {"name": "j", "type": "json"}) is None
    assert plan("a", {"name": "r", "from": ".", "type": "json"}) is None
    assert plan("a", {"name": "t", "type": "timestamp", "parse": "%Y-%m-%d"}) is None
    assert plan("a", {"name": "b", "from": "a.b"}) is None  # a leaf and an object
    assert plan({"name": "x", "from": "a[0]"}, {"name": "y", "from": "a.b"}) is None
    assert plan("a", "b", separator="é") is None
    assert plan("a", {"name": "c", "value": "two\nlines"}) is None
    assert plan("a", "b", null_value="\r") is None
    assert plan("a", {"name": "h", "value": "x"}) is not None
