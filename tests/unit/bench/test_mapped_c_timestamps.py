"""bench.mapped_c_timestamps: its C functions give exactly what the typed query's SQL
gives (or NULL where the SQL is not sure) on the forms that matter (leap days, zone
offsets, fractions of every width, negative epochs, years 1 and 9999, and every
one-character change of a few valid texts), and its run writes the same bytes."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bench.mapped_c_timestamps import build, connect, main
from streamer.mapping.sql import sql_string
from streamer.mapping.sql_typed import FAST_ISO, SECONDS
from streamer.mapping.timestamps import END_NS, MIN_NS

ALPHABET = "0123456789-:T Z+.x\t"
ISO = ["2023-11-14T22:13:20+00:00", "2024-02-29T23:59:59.123456789-05:30",
       "0001-01-01T00:00:00Z", "9999-12-31 23:59:59.999999+23:59"]
EPOCHS = ["1700000000", "-1", "0", "-62135596800", "253402300799", "951782400"]


def _one_char_changes(text: str) -> set[str]:
    changed = {text[:i] + c + text[i + 1:] for i in range(len(text)) for c in ALPHABET}
    changed |= {text[:i] + text[i + 1:] for i in range(len(text))}  # one deleted
    changed |= {text[:i] + c + text[i:] for i in range(len(text) + 1) for c in "0 ."}
    return changed


def _iso_texts() -> list[str]:
    texts = set(ISO)
    for base in ISO:
        texts |= _one_char_changes(base)
    for year, month, day in itertools.product(
            ("0001", "1900", "2000", "2023", "2024", "9999"), ("01", "02", "12"),
            ("28", "29", "30", "31")):
        texts.add(f"{year}-{month}-{day}T12:00:00Z")
    for width in range(1, 11):
        texts.add("2023-11-14T22:13:20." + "123456789"[:width] + "0" * max(0, width - 9) + "Z")
        texts.add("1969-12-31T23:59:59." + "9" * width + "+01:00")
    for zone in ("", "Z", "+00:00", "-00:00", "+05:30", "-12:00", "+23:59", "+24:00",
                 "+23:60", "+0000", "+00", "z"):
        texts.add("2023-11-14T22:13:20" + zone)
    return sorted(texts)


def _epoch_texts() -> list[str]:
    texts = set(EPOCHS)
    for base in EPOCHS:
        texts |= _one_char_changes(base)
    low, end = MIN_NS // 10**9, END_NS // 10**9
    texts |= {str(v) for v in (low - 1, low, low + 1, end - 1, end, -86401, -86400, 86399,
                               9223372036854775807, -9223372036854775808)}
    texts |= {"01", "-0", "+1", " 1", "1 ", "1.0", "1e3", "", "-", "99999999999999999999"}
    return sorted(texts)


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory):
    return connect(build(tmp_path_factory.mktemp("ext")))


def test_iso_us_is_the_typed_query_s_check_and_cast(con) -> None:
    texts = _iso_texts()
    rows = con.execute(
        f"SELECT s, streamer_iso_us(s), CASE WHEN regexp_full_match(s, {sql_string(FAST_ISO)}) "
        "THEN epoch_us(TRY_CAST(s AS TIMESTAMPTZ)) END FROM unnest(?::VARCHAR[]) t(s)",
        [texts]).fetchall()
    assert len(rows) == len(texts) > 2000
    assert [r for r in rows if r[1] != r[2]] == []
    assert sum(r[1] is not None for r in rows) > 100  # not all NULL on both sides


def test_epoch_s_iso_is_the_typed_query_s_check_and_strftime(con) -> None:
    texts = _epoch_texts()
    low, end = MIN_NS // 10**9, END_NS // 10**9
    rows = con.execute(
        "SELECT s, streamer_epoch_s_iso(s), CASE WHEN CAST(TRY_CAST(s AS BIGINT) AS VARCHAR) = s "
        f"AND TRY_CAST(s AS BIGINT) >= {low} AND TRY_CAST(s AS BIGINT) < {end} THEN "
        f"strftime(make_timestamp(TRY_CAST(s AS BIGINT) * 1000000), '{SECONDS}Z') END "
        "FROM unnest(?::VARCHAR[]) t(s)", [texts]).fetchall()
    assert len(rows) == len(texts) > 1000
    assert [r for r in rows if r[1] != r[2]] == []
    assert ("-62135596800", "0001-01-01T00:00:00Z") in [r[:2] for r in rows]
    assert ("253402300799", "9999-12-31T23:59:59Z") in [r[:2] for r in rows]
    assert ("-1", "1969-12-31T23:59:59Z") in [r[:2] for r in rows]
    assert ("951782400", "2000-02-29T00:00:00Z") in [r[:2] for r in rows]


def test_a_small_run_writes_the_same_bytes_both_ways(capsys) -> None:
    assert main(["--batch", "300", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "sql and c outputs: the same bytes"
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["sql", "c", "none"]


def test_the_extension_is_loaded_from_its_file(tmp_path: Path) -> None:
    extension = build(tmp_path)
    assert extension.name == "streamer_ts.duckdb_extension"
    assert extension.read_bytes()[-512:-256].rstrip(b"\0").endswith(b"4")  # magic, field 0
