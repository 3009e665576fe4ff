"""The native scan of nested values (`_nested.c`, `nested_scan.py`) never proves a
batch clean where DuckDB's unchecked query would write a cell otherwise than the
per-record encoder: checked against the per-record encoder's bytes and against the
SQL checks it stands in for, on generated records, on the bench's three shapes and
on arbitrary bytes (a read past a buffer's end would fault on a guard page)."""

from __future__ import annotations

import ctypes
import mmap
import os
import subprocess
import sys
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.gen import iter_shape, shape_types
from streamer.core.lines import Lines
from streamer.core.ndjson import decode_block
from streamer.sinks.stage import csv_native, nested_scan
from streamer.sinks.stage.csv_native import NativeCsvEncoder, NativeEncodeError
from streamer.sinks.stage.csv_python import CsvEncoder, is_plain
from tests.fixtures.processes import REPO
from tests.unit.sinks.stage.test_csv_native import EDGE_NUMBERS, REPEATED_KEYS

COLUMNS = ["a", "b", "c", "d", "e"]


def test_the_extension_is_built() -> None:
    # `pip install -e .` (or `python setup.py build_ext --inplace`) builds it in place
    assert nested_scan.AVAILABLE, "streamer/sinks/stage/_nested.c is not built"


def clean(*lines: str | bytes) -> bool:
    raws = [line.encode() if isinstance(line, str) else line for line in lines]
    return nested_scan.nested_proven_alike([b"\n".join(raws), b"\n"])


# --- generated records ----------------------------------------------------------

# keys that collide once decoded ("k" "\u006b"), hold JSON's structure, or nothing
KEYS = ['"k"', '"k"', '"j"', '"\\u006b"', '"K"', '""', '"é"', '"\\u00e9"', '"q\\":"',
        '"{"', '"a:b"', '"[]"', '"k "', '"\\\\"']
STRINGS = ['""', '"{"', '"}"', '"[{\\"k\\":1,\\"k\\":2}]"', '"\\":"', '"a\\"b"', '"x:{"',
           '"\\u0061"', '"\\u001f"', '"\\u001F"', '"\\u000b"', '"\\u0000"', '"\\u007f"',
           '"\\b\\f\\n\\r\\t"', '"\\/"', '"\\ud83d\\ude00"', '"\u2028"', '"é"', '"#"',
           '"1e5"', '"]"', '"\\\\"', '"\\\\\\""']
space = st.sampled_from(["", "", " ", "\t", "\r"])


def _float_texts(x: float) -> list[str]:
    """One float in the spellings JSON allows."""
    forms = [repr(x), orjson.dumps(x).decode(), f"{x:.17g}", f"{x:e}", f"{x:.20f}"]
    return [f for f in forms if f[-1:].isdigit()]
number = (st.sampled_from(EDGE_NUMBERS)
          | st.integers(-(2**64), 2**64).map(str)
          | st.floats(allow_nan=False, allow_infinity=False).flatmap(
              lambda x: st.sampled_from(_float_texts(x))))
scalar = (number | st.sampled_from(STRINGS) | st.sampled_from(["true", "false", "null"])
          | st.text(max_size=6).map(lambda t: orjson.dumps(t).decode()))


def _array(items: list[str], pad: str) -> str:
    return "[" + pad + ("," + pad).join(items) + pad + "]"


def _object(pairs: list[tuple[str, str]], pad: str) -> str:
    return "{" + ",".join(f"{pad}{k}{pad}:{pad}{v}" for k, v in pairs) + pad + "}"


nested = st.recursive(
    scalar,
    lambda children: st.builds(_array, st.lists(children, max_size=4), space)
    | st.builds(_object, st.lists(st.tuples(st.sampled_from(KEYS), children), max_size=5),
                space),
    max_leaves=12)
top_value = nested | st.sampled_from(STRINGS)
record = st.builds(
    _object, st.lists(st.tuples(st.sampled_from([f'"{c}"' for c in COLUMNS]), top_value),
                      max_size=5, unique_by=lambda kv: kv[0]), space)


def _decoded(lines: list[str]) -> list[bytes]:
    """The lines a source passes on (integers past 64 bits are dead letters)."""
    return decode_block("".join(line + "\n" for line in lines).encode(), 0, 10**6).raws


def _per_record(raws: list[bytes]) -> bytes:
    return CsvEncoder(COLUMNS).encode([(list(map(orjson.loads, raws)), is_plain(raws))])


@pytest.fixture(scope="module")
def encoder() -> Iterator[NativeCsvEncoder]:
    native = NativeCsvEncoder(COLUMNS)
    yield native
    native.close()


def _unchecked(encoder: NativeCsvEncoder, raws: list[bytes],
               monkeypatch: pytest.MonkeyPatch) -> bytes:
    """DuckDB's rows for `raws` with no nested check at all."""
    with monkeypatch.context() as patch:
        patch.setattr(csv_native, "nested_proven_alike", lambda buffers: True)
        return encoder.encode([Lines.of(raws)]).rows


def _checked(encoder: NativeCsvEncoder, raws: list[bytes],
             monkeypatch: pytest.MonkeyPatch) -> bytes | None:
    """DuckDB's rows with the SQL checks (as without the extension), or None if refused."""
    with monkeypatch.context() as patch:
        patch.setattr(csv_native, "nested_proven_alike", lambda buffers: False)
        try:
            return encoder.encode([Lines.of(raws)]).rows
        except NativeEncodeError:
            return None


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(record, min_size=1, max_size=6))
def test_a_batch_proven_clean_is_written_as_the_per_record_encoder_writes_it(
        encoder, monkeypatch, lines):
    raws = _decoded(lines)
    if not raws or not nested_scan.nested_proven_alike([b"\n".join(raws), b"\n"]):
        return
    want = _per_record(raws)
    assert _unchecked(encoder, raws, monkeypatch) == want
    # the SQL checks, which the scan stands in for, find nothing either (they may
    # refuse a top-level string that looks nested: the per-record bytes are the same)
    assert _checked(encoder, raws, monkeypatch) in (want, None)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=nested.filter(lambda v: v[:1] in "[{"))
def test_the_scan_never_proves_clean_a_value_the_sql_checks_refuse(
        encoder, monkeypatch, value):
    raws = _decoded([f'{{"a":1,"e":{value}}}'])
    if raws and _checked(encoder, raws, monkeypatch) is None:
        assert not clean(*raws)


@pytest.mark.parametrize("value", [
    *REPEATED_KEYS, '{"a":{"b":{"c":{"d":{"k":1,"k":1}}}}}', '[[[[{"j":1,"j":1}]]]]',
    '{"k":1,"\\u006b":2}', '{"é":1,"\\u00e9":1}', '{"\\"":1,"\\u0022":1}',
    '[1e5]', '[1E5]', '[0.000001]', '[0.0000099]', '[1234567890123456.5]', '[-0]',
    '[1234567890123456789]', '["\\u001f"]', '["\\u000B"]', '{"k":"\\u0000"}',
    '{"k":1,"a":2,"b":3,"c":4,"d":5,"e":6,"f":7,"g":8,"h":9,"i":10,"j":11,"l":12,'
    '"m":13,"n":14,"o":15,"p":16,"q":17,"k":18}'])
def test_maybe_where_a_nested_value_may_render_otherwise(value):
    assert not clean('{"a":1}', f'{{"a":2,"e":{value}}}')


@pytest.mark.parametrize("value", [
    '{"k":1,"K":2,"k ":3}', '{"a":{"k":1},"b":{"k":1}}', '[{"k":1},{"k":2},{"j":{"k":3}}]',
    '{"a":[[{"k":1}]]}', '[1, 0.5, 0.00001, 123456789012345.5, -7, 0.1, 2.50, -0.0]',
    '{"k":"x\\":y","j":"{\\"k\\":1,\\"k\\":2}"}', '["\\u00e9\\/", "\\t", "#", "\\u0020"]',
    '{"t":"12:30:00","u":"http://h:80/"}', '[[], {}, [{}], {"": 1}]', '[true, false, null]',
    '{' + ",".join(f'"k{i}":{i}' for i in range(200)) + '}'])
def test_clean_where_every_nested_value_renders_alike(value):
    line = f'{{"a":2,"e":{value}}}'
    assert clean('{"a":1}', line)
    raws = [b'{"a":1}', line.encode()]
    encoder = NativeCsvEncoder(COLUMNS)
    try:
        assert encoder.encode([Lines.of(raws)]).rows == _per_record(raws)
        assert not any(name.split("_")[1].startswith("plain0c")
                       for name in encoder._statements), "the checks ran"
    finally:
        encoder.close()


def test_a_repeated_key_or_number_at_the_top_level_is_not_nested():
    # the record's own keys and values are not cells' JSON text
    assert clean('{"a":1e5,"b":"\\u001f","c":-0,"e":[1]}', '{"a":{"k":1},"b":[2]}')


# --- the bench's shapes ---------------------------------------------------------


@pytest.mark.parametrize("shape", ["small", "default", "large"])
def test_the_bench_shapes_are_byte_identical_and_large_skips_the_checks(shape):
    columns = list(shape_types(shape))
    raws = [orjson.dumps(r) for r in iter_shape(shape, 600, seed=7)]
    want = CsvEncoder(columns).encode([(list(map(orjson.loads, raws)), is_plain(raws))])
    encoder = NativeCsvEncoder(columns)
    try:
        block = b"".join(raw + b"\n" for raw in raws)
        lines = decode_block(block, 0, 10**6).lines()
        assert encoder.encode(lines.split(250)).rows == want
        checked = [name for name in encoder._statements
                   if name.split("_")[1].startswith("plain0c")]
    finally:
        encoder.close()
    assert checked == [], checked
    if shape == "large":
        assert nested_scan.nested_proven_alike(lines.ndjson())


# --- arbitrary bytes --------------------------------------------------------------

PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)


class GuardedBuffer:
    """Bytes placed at the very end of a readable page followed by an unreadable
    one: a read one byte past them faults."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, 2 * PAGE)
        self._address = ctypes.addressof(ctypes.c_char.from_buffer(self._map))
        if _libc.mprotect(ctypes.c_void_p(self._address + PAGE), PAGE, 0):  # PROT_NONE
            raise OSError(ctypes.get_errno(), "mprotect")

    def view(self, data: bytes) -> memoryview:
        assert len(data) <= PAGE
        start = PAGE - len(data)
        self._map[start:PAGE] = data
        return memoryview(self._map)[start:PAGE]

    def close(self) -> None:
        _libc.mprotect(ctypes.c_void_p(self._address + PAGE), PAGE,
                       mmap.PROT_READ | mmap.PROT_WRITE)
        self._map.close()


@pytest.fixture(scope="module")
def guarded() -> Iterator[GuardedBuffer]:
    buffer = GuardedBuffer()
    yield buffer
    buffer.close()


# valid lines, cut and spliced anywhere: the scanner's states at every byte
fragments = st.lists(record, min_size=1, max_size=3).map(lambda ls: "\n".join(ls).encode())


# a longer run: STREAMER_FUZZ_EXAMPLES=100000 pytest --timeout 0 (generating the examples
# is the cost: about 40 a second)
@settings(max_examples=int(os.environ.get("STREAMER_FUZZ_EXAMPLES", "400")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.binary(max_size=300) | fragments
       | st.tuples(fragments, st.integers(0, 400), st.binary(max_size=8)).map(
           lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:]),
       cut=st.integers(0, 400))
def test_any_bytes_are_scanned_without_reading_past_them(guarded, data, cut):
    view = guarded.view(data[:PAGE])
    for buffers in ([view], [view[:cut]], [view[cut:]], [view[:cut], view[cut:]]):
        assert nested_scan.nested_proven_alike(buffers) in (True, False)
    del view


def test_a_buffer_not_closing_its_values_is_maybe():
    for text in ['{"a":{"k":1', '{"a":[', '{"a":"x', '{"a":{"k":1}}}', '{"a":[}', '{"e":@}']:
        assert not clean(text), text


def test_not_a_buffer_is_a_type_error():
    with pytest.raises(TypeError):
        nested_scan.nested_proven_alike(["text"])
    assert nested_scan.nested_proven_alike([]) is True


# --- without the extension --------------------------------------------------------

FALLBACK = """
import sys
sys.modules["streamer.sinks.stage._nested"] = None  # as if not built
from streamer.core.lines import Lines
from streamer.sinks.stage import nested_scan
from streamer.sinks.stage.csv_native import NativeCsvEncoder, NativeEncodeError
assert not nested_scan.AVAILABLE and not nested_scan.nested_proven_alike([b'{"a":[1]}'])
encoder = NativeCsvEncoder(["a", "e"])
print(encoder.encode([Lines.of([b'{"a":1,"e":{"k":[1,2.5]}}'])]).rows)
try:
    encoder.encode([Lines.of([b'{"a":1,"e":{"k":1,"k":2}}'])])
except NativeEncodeError as exc:
    print("refused:", exc)
print(sorted(name.split("_")[1] for name in encoder._statements))
"""


def test_without_the_extension_the_sql_checks_run():
    run = subprocess.run([sys.executable, "-c", FALLBACK], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "b'1,\"{\"\"k\"\":[1,2.5]}\"\\r\\n'",
        "refused: Invalid Input Error: a value DuckDB writes otherwise than Python in column e",
        "['plain0cb']"]
