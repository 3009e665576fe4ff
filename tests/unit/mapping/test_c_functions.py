"""The column mapping's timestamp functions in C (`streamer/mapping/streamer_ts.c`, a
DuckDB extension built by setup.py; `c_functions.py` loads it): built, declared as
this DuckDB lays out its C API, equal to the typed query's SQL on every hard text,
loaded only on a locked private connection, and on any failure left out with one
log line and the SQL used instead (the typed query's tests run both ways:
tests/helpers/c_functions.py)."""

from __future__ import annotations

import itertools
import logging
import re
import shutil
import subprocess
from pathlib import Path
from unittest import mock

import duckdb
import orjson
import pytest

from streamer.core.lines import Lines
from streamer.mapping import c_functions
from streamer.mapping.timestamps import END_NS, MIN_NS
from streamer.sinks.stage.csv_native import NativeCsvEncoder
from tests.helpers.c_functions import native_encoder

SOURCE = Path(c_functions.__file__).with_name("streamer_ts.c")
COLUMNS = [
    {"name": "ms", "from": "e.t", "type": "timestamp", "format": "epoch_ms"},
    {"name": "iso", "from": "e.t", "type": "timestamp"},
    {"name": "at", "from": "e.s", "type": "timestamp", "parse": "epoch_s"},
    {"name": "n", "type": "integer"},
]
RECORDS = [orjson.dumps({"e": {"t": f"19{i:02d}-02-28T23:59:59.{i:03d}+01:00", "s": i * 86399 - 3},
                         "n": i}) for i in range(100)]
ALPHABET = "0123456789-:T Z+.x\t"
ISO = ["2023-11-14T22:13:20+00:00", "2024-02-29T23:59:59.123456789-05:30",
       "0001-01-01T00:00:00Z", "9999-12-31 23:59:59.999999+23:59", "1969-12-31T23:59:59.5Z"]
EPOCHS = ["1700000000", "-1", "0", "-62135596800", "253402300799", "951782400"]


def _one_char_changes(text: str) -> set[str]:
    changed = {text[:i] + c + text[i + 1:] for i in range(len(text)) for c in ALPHABET}
    changed |= {text[:i] + text[i + 1:] for i in range(len(text))}  # one deleted
    changed |= {text[:i] + c + text[i:] for i in range(len(text) + 1) for c in "0 ."}
    return changed


def _texts() -> list[str]:
    """ISO texts (leap days, every zone form, fractions of 1-10 digits, the year
    bounds, one-character changes) and epoch texts (negatives, bounds, int64's
    extremes, what is not canonical, one-character changes)."""
    texts = set(ISO) | set(EPOCHS)
    for base in ISO + EPOCHS:
        texts |= _one_char_changes(base)
    for year, month, day in itertools.product(
            ("0000", "0001", "1900", "2000", "2023", "2024", "9999"), ("01", "02", "04", "12"),
            ("28", "29", "30", "31")):
        texts.add(f"{year}-{month}-{day}T12:00:00Z")
    for width in range(1, 11):
        texts.add("2023-11-14T22:13:20." + "123456789"[:width] + "0" * max(0, width - 9) + "Z")
        texts.add("1969-12-31T23:59:59." + "9" * width + "+01:00")
    for zone in ("", "Z", "+00:00", "-00:00", "+05:30", "-12:00", "+23:59", "+24:00",
                 "+23:60", "+0000", "+00", "z"):
        texts.add("2023-11-14T22:13:20" + zone)
    low, end = MIN_NS // 10**9, END_NS // 10**9
    texts |= {str(v) for v in (low - 1, low, low + 1, end - 1, end, -86401, -86400, 86399,
                               9223372036854775807, -9223372036854775808)}
    texts |= {"01", "-0", "+1", " 1", "1 ", "1.0", "1e3", "", "-", "99999999999999999999"}
    return sorted(texts)


def test_the_extension_is_built_for_this_duckdb() -> None:
    """A DuckDB outside CHECKED_DUCKDB was not checked against the declarations in
    streamer_ts.c: re-check them (the test below), then widen the range."""
    assert c_functions.EXTENSION.is_file(), "streamer/mapping/streamer_ts.c is not built"
    version = tuple(int(part) for part in duckdb.__version__.split(".")[:2])
    low, high = c_functions.CHECKED_DUCKDB
    assert low <= version < high, f"duckdb {duckdb.__version__}: re-check streamer_ts.c"
    footer = c_functions.EXTENSION.read_bytes()[-512:]
    fields = [footer[i:i + 32].rstrip(b"\0").decode() for i in range(0, 256, 32)][::-1]
    platform = duckdb.connect().execute("PRAGMA platform").fetchone()[0]
    assert fields[:5] == ["4", platform, "v1.2.0", "0.1", "C_STRUCT"]


PROBE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
struct access { void (*set_error)(void *, const char *); void *(*get_database)(void *);
                const void *(*get_api)(void *, const char *); };
static const int positions[] = {POSITIONS};
bool probe_init_c_api(void *info, struct access *access) {
    void *const *api = access->get_api(info, "v1.2.0");
    static char names[8192];
    names[0] = 0;
    for (unsigned i = 0; i < sizeof positions / sizeof positions[0]; i++) {
        Dl_info where;
        const char *name = dladdr(api[positions[i]], &where) && where.dli_sname
            ? where.dli_sname : "?";
        strncat(names, name, 100);
        strcat(names, " ");
    }
    access->set_error(info, names);
    return false;
}
"""


def test_each_api_position_is_the_function_it_is_declared_as(tmp_path: Path) -> None:
    """The positions in streamer_ts.c's enum name, in the struct this DuckDB's
    get_api("v1.2.0") returns, the functions they are declared as (by their symbols)."""
    declared = {int(n): "duckdb_" + name.lower()
                for name, n in re.findall(r"API_([A-Z_]+) = (\d+)", SOURCE.read_text())}
    assert len(declared) == 17
    source = tmp_path / "probe.c"
    source.write_text(PROBE.replace("POSITIONS", ", ".join(map(str, declared))))
    library = tmp_path / "probe.so"
    subprocess.run([shutil.which("cc") or "cc", "-shared", "-fPIC", "-o", str(library),
                    str(source), "-ldl"], check=True, timeout=60)
    extension = tmp_path / "probe.duckdb_extension"
    extension.write_bytes(library.read_bytes() + c_functions.EXTENSION.read_bytes()[-512:])
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    with pytest.raises(duckdb.Error) as refused:
        con.execute(f"LOAD '{extension}'")
    found = str(refused.value).split(": ", 1)[1].split()
    assert dict(zip(declared, found, strict=True)) == declared


def test_the_c_functions_are_the_typed_query_s_sql_on_hard_texts() -> None:
    texts = _texts()
    encoder = native_encoder(COLUMNS, "c")
    try:
        *differ, (count,) = encoder._con.execute(c_functions.check_query(),
                                                 {"texts": texts}).fetchall()
        converted = encoder._con.execute(
            "SELECT count(streamer_iso_us(s)), count(streamer_epoch_s_iso(s)) "
            "FROM unnest($texts::VARCHAR[]) t(s)", {"texts": texts}).fetchone()
    finally:
        encoder.close()
    assert differ == [] and int(count) == len(texts) > 3000
    assert converted[0] > 100 and converted[1] > 50  # not NULL everywhere on both sides


def test_only_the_mapping_s_connection_loads_them_and_then_it_is_locked(tmp_path: Path) -> None:
    plain = NativeCsvEncoder(["a", "b"])
    assert plain._con.execute(
        "SELECT current_setting('allow_unsigned_extensions')").fetchone() == (False,)
    plain.close()
    encoder = native_encoder(COLUMNS, "c")
    (tmp_path / "other.csv").write_text("x\n1\n")
    other = tmp_path / "other.duckdb_extension"  # any other file
    other.write_bytes(c_functions.EXTENSION.read_bytes())
    try:
        for statement, refusal in (
                ("SET TimeZone = 'Europe/Paris'", "the configuration has been locked"),
                ("SET enable_external_access = true", "the configuration has been locked"),
                (f"SELECT * FROM read_csv('{tmp_path / 'other.csv'}')", "disabled"),
                (f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'", "disabled"),
                (f"LOAD '{other}'", "disabled")):
            with pytest.raises(duckdb.Error, match=refusal):
                encoder._con.execute(statement)
        # its own memory files still work, macros and prepared statements too
        got = encoder.encode([Lines.of(RECORDS)])
    finally:
        encoder.close()
    assert got.rejected == [] and got.rows.splitlines()[1] == (
        b"-2172358800999,1901-02-28T22:59:59.001Z,1970-01-01T23:59:56Z,1")
    assert not (tmp_path / "out.csv").exists()


def _fallback(caplog: pytest.LogCaptureFixture, level: int, patch: object) -> NativeCsvEncoder:
    """An encoder created under `patch`: it uses the SQL and logs one line why."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="streamer.mapping"), patch:
        encoder = NativeCsvEncoder(COLUMNS)
    assert not encoder.c_functions
    assert [(r.levelno, r.name) for r in caplog.records] == [(level, "streamer.mapping")]
    assert encoder._con.execute(
        "SELECT current_setting('allow_unsigned_extensions')").fetchone() == (False,)
    return encoder


def test_a_failed_load_or_a_differing_function_falls_back_to_the_same_bytes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loaded = native_encoder(COLUMNS, "c")
    want = loaded.encode([Lines.of(RECORDS)])
    loaded.close()
    # a file DuckDB refuses (here: no metadata footer, as from another build)
    unsigned = tmp_path / c_functions.EXTENSION.name
    unsigned.write_bytes(c_functions.EXTENSION.read_bytes()[:-512])
    refused = _fallback(caplog, logging.WARNING,
                        mock.patch.object(c_functions, "EXTENSION", unsigned))
    assert "not used, its SQL is" in caplog.records[0].getMessage()
    # a function that gives other values than the SQL on the hard texts
    differs = _fallback(caplog, logging.WARNING, mock.patch.dict(
        c_functions.C_TEXT, {("iso8601", "epoch_ms"): "streamer_iso_epoch_us"}))
    assert "differ from the SQL on ['2023-11-14T22:13:20+00:00'" in caplog.records[0].getMessage()
    # a DuckDB its declarations were not checked against: not loaded
    unchecked = _fallback(caplog, logging.INFO,
                          mock.patch.object(c_functions, "CHECKED_DUCKDB", ((0, 1), (0, 2))))
    assert "outside the versions" in caplog.records[0].getMessage()
    for encoder in (refused, differs, unchecked):
        got = encoder.encode([Lines.of(RECORDS)])
        encoder.close()
        assert (got.rows, got.rejected) == (want.rows, [])
        assert encoder.typed_batches == 1
