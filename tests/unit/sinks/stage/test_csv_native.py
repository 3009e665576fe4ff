"""The native (DuckDB) CSV encoder writes the bytes the per-record encoder writes,
or refuses the batch (which the sink then encodes per record): compared as whole
CSV byte strings, never as parsed rows."""

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.lines import Lines
from streamer.core.ndjson import decode_block
from streamer.sinks.stage.csv_native import NativeCsvEncoder, NativeEncodeError
from streamer.sinks.stage.csv_python import CsvEncoder, is_plain

COLUMNS = ["a", "b", "c", "d", "e"]

# numbers as JSON text, in the forms a producer may write them
EDGE_NUMBERS = [
    "1e21", "1E21", "1e+21", "1.0e21", "1.0", "-0.0", "-0", "0", "0e0", "1e-7", "1E-7",
    "0.1e-5", "1e-6", "9.99e-6", "0.00001", "1e-5", "0.0001", "5e-324", "4.9e-324",
    "1e-400", "2.2250738585072014e-308", "1.7976931348623157e308", "1.5e300", "1.5E+300",
    "100000000000000000000.0", "1e16", "1e15", "9007199254740993", "9007199254740993.0",
    "123456789012345678.0", "12345678901234567", "1e20", "1.0e20", "99999999999999999999",
    "9223372036854775807", "-9223372036854775808", "9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "18446744073709551616",
    "-18446744073709551616", "123456789012345678901234567890", "0.1", "2.50", "-1.5e-10",
]
EDGE_STRINGS = [
    '""', '"\\u00e9"', '"\\/"', '"\\u001f"', '"\\u001F"', '"\\u000b"', '"\\b\\f"',
    '"\\ud83d\\ude00"', '"#x"', '"a#b"', '"\\\\N"', '"NULL"', '"null"', '" pad "',
    '"a,b"', '"say \\"hi\\""', '"\\r"', '"\\n"', '"x\\ry"', '"\\t"', '"é"',
    '"\u2028"', '"\x7f"', '"12345678901234567890123"', '"{not json"',
    '"{\\"a\\":1,\\"a\\":2}"',
]


def _float_texts(x: float) -> list[str]:
    """One float in the spellings JSON allows (all parse to the same double)."""
    forms = [repr(x), orjson.dumps(x).decode(), f"{x:.17g}", f"{x:e}", f"{x:E}"]
    return [f for f in forms if f[-1:].isdigit()]  # JSON needs a digit last (not "inf")


number_text = (st.sampled_from(EDGE_NUMBERS)
               | st.integers(-(2**70), 2**70).map(str)
               | st.floats(allow_nan=False, allow_infinity=False).flatmap(
                   lambda x: st.sampled_from(_float_texts(x)))
               | st.sampled_from([10, 100, 300]).flatmap(
                   lambda scale: st.floats(-1, 1).map(lambda x: repr(x * 10.0 ** scale))))
string_text = (st.sampled_from(EDGE_STRINGS)
               | st.text(st.characters(blacklist_categories=("Cs",)), max_size=8).map(
                   lambda t: orjson.dumps(t).decode()))
space = st.sampled_from(["", "", " ", "\t", " \n "[:1]])
scalar_text = number_text | string_text | st.sampled_from(["true", "false", "null"])
key_text = st.sampled_from(['"k"', '"x"', '"\\u006b"', '"é"', '"#"', '""', '"K"', '"q\\":"',
                           '"q\\u0022:"'])


def _array(items: list[str], pad: str) -> str:
    return "[" + pad + ("," + pad).join(items) + pad + "]"


def _object(pairs: list[tuple[str, str]], pad: str) -> str:
    return "{" + ",".join(f"{pad}{k}{pad}:{pad}{v}" for k, v in pairs) + "}"


value_text = st.recursive(
    scalar_text,
    lambda children: st.builds(_array, st.lists(children, max_size=4), space)
    | st.builds(_object, st.lists(st.tuples(key_text, children), max_size=4), space),
    max_leaves=8)
record_text = st.builds(
    _object,
    st.lists(st.tuples(st.sampled_from([*COLUMNS, "other"]).map(lambda k: f'"{k}"'),
                       value_text), max_size=6),
    space)
dialects = st.sampled_from([(",", '"', ""), (";", "'", "\\N"), ("\t", '"', "NULL"),
                            ("|", '"', ""), (",", '"', "\\N")])


@pytest.fixture(scope="module")
def native_encoders():
    """One encoder per dialect (a DuckDB connection each), reused by every example."""
    encoders: dict[tuple[tuple[str, str, str], int], NativeCsvEncoder] = {}
    yield encoders
    for encoder in encoders.values():
        encoder.close()


def _per_record(raws: list[bytes], dialect: tuple[str, str, str],
                columns: list[str] = COLUMNS) -> bytes:
    separator, quote, null_value = dialect
    encoder = CsvEncoder(columns, separator=separator, quote=quote, null_value=null_value)
    return encoder.encode([(list(map(orjson.loads, raws)), is_plain(raws))])


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(record_text, min_size=1, max_size=12), dialect=dialects,
       cut=st.floats(0, 1), as_list=st.booleans(), width=st.sampled_from([len(COLUMNS), 1]))
def test_native_bytes_equal_per_record_bytes(native_encoders, lines, dialect, cut, as_list,
                                             width):
    """Records written as JSON text (numbers in every spelling and magnitude,
    escapes, spaces, repeated keys, nesting): the native CSV is byte for byte the
    per-record CSV, or the batch is refused."""
    block = "".join(line + "\n" for line in lines).encode()
    # what the sources pass on: an integer past 64 bits is a dead letter
    decoded = decode_block(block, 0, 10**6)
    if not decoded.raws:
        return
    columns = COLUMNS[:width]  # one column: a row of one empty cell is `""`
    if (dialect, width) not in native_encoders:
        separator, quote, null_value = dialect
        native_encoders[dialect, width] = NativeCsvEncoder(
            columns, separator=separator, quote=quote, null_value=null_value)
    want = _per_record(decoded.raws, dialect, columns)
    # the read's block as it is, cut in two parts (a batch boundary), or a list of lines
    lines_ = Lines.of(decoded.raws) if as_list or decoded.bad else decoded.lines()
    try:
        got = native_encoders[dialect, width].encode(
            lines_.split(int(cut * len(decoded.raws)))).rows
    except NativeEncodeError:
        return  # the sink encodes this batch per record: `want` by construction
    assert got == want


def assert_native_rows_equal_python_rows(items: list[dict]) -> None:
    native = NativeCsvEncoder(COLUMNS)
    try:
        got = native.encode([Lines.of([orjson.dumps(r) for r in items])]).rows
    finally:
        native.close()
    assert got == CsvEncoder(COLUMNS).encode([(items, False)])


def test_typical_records_are_byte_identical():
    items = [{"a": 1700000000, "b": "2023-11-14T22:13:20Z", "c": 22.1, "d": None,
              "e": "disk full, retrying"},
             {"a": -5, "b": "", "c": 1e21, "e": {"k": [1, 2.5, None, True]}},
             {"b": 'q"z', "c": 0.1, "d": False, "e": "line\rbreak"}]
    assert_native_rows_equal_python_rows(items)


def test_refused_batch_raises_for_the_per_record_fallback():
    native = NativeCsvEncoder(COLUMNS)
    try:
        with pytest.raises(NativeEncodeError, match="duplicate key"):
            native.encode([Lines.of([b'{"a":1}', b'{"a":1,"a":2}'])])
        # the encoder stays usable after a refusal
        assert native.encode([Lines.of([b'{"a":1,"b":"x"}'])]).rows == b"1,x,,,\r\n"
    finally:
        native.close()


def test_records_larger_than_the_default_reader_buffer_are_encoded_natively():
    # the JSON reader's maximum_object_size is set per batch (1 MiB at least, for
    # memory): a 3 MiB record among small ones must not be refused (DuckDB 2.0 does
    # not enforce the limit; this guards the contract across DuckDB versions)
    items = [{"a": 1, "b": "x"}, {"a": 2, "b": "é" * (3 * 1024 * 1024 // 2), "c": 0.5},
             {"a": 3, "e": [1, 2]}]
    assert_native_rows_equal_python_rows(items)


def _native_or_none(encoder: NativeCsvEncoder, raws: list[bytes]) -> bytes | None:
    try:
        return encoder.encode([Lines.of(raws)]).rows
    except NativeEncodeError:
        return None


def test_top_level_numbers_in_every_spelling_are_encoded_natively_byte_for_byte():
    """Flat records are never refused: every top-level number spelling DuckDB
    reads gives Python's bytes (1e21, 1E21, 1.0e21 -> 1e+21; 0.1e-5 -> 1e-06)."""
    good = [n for n in EDGE_NUMBERS if decode_block(f'{{"a":{n}}}\n'.encode(), 0, 99).raws]
    negated = [n[1:] if n.startswith("-") else "-" + n for n in good]
    raws = [f'{{"a":{n},"b":{s},"c":{m}}}'.encode()
            for n, m in zip(good, negated, strict=True) for s in EDGE_STRINGS
            if s[1:2] not in "[{"]  # text that looks nested is checked (and may be refused)
    for dialect in [(",", '"', ""), (";", "'", "\\N")]:
        encoder = NativeCsvEncoder(COLUMNS, separator=dialect[0], quote=dialect[1],
                                   null_value=dialect[2])
        try:
            assert encoder.encode([Lines.of(raws)]).rows == _per_record(raws, dialect)
        finally:
            encoder.close()


# a key twice in one object, at every depth and place; the cheap test (no more
# `":` in the cell than in its json_structure) must not take any of them for one
# without: keys holding `":`, string values holding it, arrays of objects
REPEATED_KEYS = [
    '{"k":1,"j":2,"k":1}', '{"k":{"a":1},"k":{"b":2}}', '{"a":{"b":{"c":{"k":1,"k":1}}}}',
    '{"a":[1,{"k":null,"k":null}]}', '[[{"k":1}],[{"j":1,"j":2}]]', '[{"k":1},{"k":1,"k":1}]',
    '{"\\u006b":1,"k":2}', '{"":1,"":1}', '{"q\\":":1,"q\\":":1}', '{"a:b":1,"a:b":1}',
    '{"k":"x\\":y","k":"x\\":y"}', '{"k":"12:30:00","j":"http://h:80/","k":1}',
    '{"a":[{"k":1},{"k":2}],"b":{"j":1,"j":2}}', '{"k":[],"k":{}}', '{"x":1e16,"x":1}'
]


@pytest.mark.parametrize("nested", [
    '[1e21]', '[1E21]', '{"k":1.5e300}', '[100000000000000000000.0]', '[1e16]',
    '[0.1e-5]', '[9.99e-6]', '{"k":[-1e-6]}', '["\\u001f"]', '{"k":"\\u001E"}',
    '{"k":1,"k":2}', '[{"x":{"k":1,"j":2,"k":3}}]', *REPEATED_KEYS])
def test_nested_values_yyjson_writes_otherwise_are_refused(nested):
    """Each shape alone in a batch of good records refuses the batch natively (the
    sink then encodes it per record, which gives the reference bytes)."""
    raws = [b'{"a":1,"b":[1.5,"x"]}', f'{{"a":2,"e":{nested}}}'.encode()]
    encoder = NativeCsvEncoder(COLUMNS)
    try:
        with pytest.raises(NativeEncodeError, match="column e"):
            encoder.encode([Lines.of(raws)])
        # the same batch without that record is encoded natively
        assert encoder.encode([Lines.of(raws[:1])]).rows == _per_record(raws[:1], (",", '"', ""))
    finally:
        encoder.close()


def test_nested_values_yyjson_writes_as_orjson_are_encoded_natively():
    raws = [f'{{"a":{i},"e":{nested}}}'.encode() for i, nested in enumerate([
        '[1e15, 0.00001, 1e-7, 5e-324, -0.0, 1.0, 0.1, 2.50]', '{"k" : [ true , null ] }',
        '["\\u00e9\\/", "\\u0001", "\\t", "#"]', '{"b":1,"a":{"c":{}}}', '[[], {}]',
        '[9223372036854775807, -9223372036854775808]', '"{\\"k\\":1}"',
        # no repeated key, each settled by the cheap test or by the exact one
        '{"k":1,"K":2,"k ":3}', '{"q\\":":1,"q":2}', '{"k":"x\\":y","j":"x\\":y"}',
        '{"t":"12:30:00","u":"http://h:80/"}', '[{"k":1},{"k":2},{"j":{"k":3}}]',
        '{"a":{"k":1},"b":{"k":1}}', '{"a":[[{"k":1}]]}'])]
    encoder = NativeCsvEncoder(COLUMNS)
    try:
        assert encoder.encode([Lines.of(raws)]).rows == _per_record(raws, (",", '"', ""))
    finally:
        encoder.close()
