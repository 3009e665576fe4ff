"""A mapped stage (nested paths, an array index, timestamps parsed from ISO 8601 and
from epoch seconds, integer / double / boolean / string / json columns) written as
Parquet and as NDJSON by `streamer run`, batches large enough for the native encoder,
read back by DuckDB and compared cell by cell with values this file computes from
the records itself (not with the project's mapper).

Without a json column the native encoder's typed query recognises every record, so
these batches go through the typed path for a non-CSV target; with one, through the
full mapping query."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from streamer.sinks.stage.csv_native import MIN_RECORDS
from tests.helpers import base_config, file_source, run_cli, toml_keys, write_config, write_ndjson

pytestmark = pytest.mark.timeout(120)
N = 1800
BATCH = 300  # records a batch, well above the native encoder's minimum
assert BATCH >= 4 * MIN_RECORDS

COLUMNS: list[Any] = [
    {"name": "id", "from": "id", "type": "integer"},
    {"name": "at", "from": "event.time", "type": "timestamp"},
    {"name": "at_ms", "from": "event.time", "type": "timestamp", "format": "epoch_ms"},
    {"name": "seen", "from": "event.epoch", "type": "timestamp", "parse": "epoch_s"},
    {"name": "score", "from": "m.score", "type": "double"},
    {"name": "ok", "from": "m.ok", "type": "boolean"},
    {"name": "second", "from": "m.stats[1]", "type": "integer"},
    {"name": "name", "from": "user.name"},
    "host",
]
TAGS: Any = {"name": "tags", "from": "tags", "type": "json"}
TIMESTAMPS = ("at", "seen")
# no text starting with `{` or `[`: the typed query leaves such a string column's
# batch to the full query (it might be an object)
NAMES = ["plain", 'comma, and "quotes"', "two\r\nlines", "ünïcødé ✓", "#hash", "tab\there",
         "  spaced  ", "back\\slash", "a}b]"]
ZONES = [0, 330, -480, 60, -150]  # minutes east of UTC
START_NS = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z
SPAN_NS = 40 * 365 * 86_400 * 10**9
TAG_VALUES: list[Any] = [["a", "b,c"], {"k": 1, "s": "x\"y"}, [], {}, 7, "text", True,
                         {"nested": [1, 2.5, {"deep": None}]}, ["ünï"]]


def iso_input(ns: int, digits: int, zone: int, separator: str) -> str:
    """`ns` as local time in `zone` (minutes east), `digits` fraction digits (the
    instant has none below them); zone 0 is written `Z` or left out (UTC)."""
    seconds, fraction = divmod(ns, 10**9)
    local = datetime.fromtimestamp(seconds, timezone(timedelta(minutes=zone)))
    text = local.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    if digits:
        text += "." + f"{fraction:09d}"[:digits]
    if zone == 0:
        return text + ("Z" if seconds % 2 else "")
    sign, minutes = ("+" if zone > 0 else "-"), abs(zone)
    return text + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def iso_output(ns: int) -> str:
    """The documented ISO 8601 output: UTC, 0, 3, 6 or 9 fraction digits, the fewest
    that are exact, and `Z`."""
    seconds, fraction = divmod(ns, 10**9)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    for digits in (0, 3, 6, 9):
        if fraction % 10 ** (9 - digits) == 0:
            break
    if digits:
        text += "." + f"{fraction:09d}"[:digits]
    return text + "Z"


def generate(n: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """n records, and for each the values its row should hold (None: null): every
    value in a form the typed query recognises, with nulls from missing keys,
    nulls and empty strings."""
    rng = random.Random(seed)
    records, want = [], []
    for i in range(n):
        digits = rng.choice((0, 3, 6, 9))
        ns = START_NS + rng.randrange(SPAN_NS) // 10 ** (9 - digits) * 10 ** (9 - digits)
        epoch = rng.randrange(0, 4_000_000_000)
        score: Any = rng.choice((i / 7, -rng.random() * 1e6, 0.1, 1e-7, 12345.678, 3, -2,
                                 "2.5", "1e3", None))
        ok: Any = rng.choice((True, False, "true", "false", None))
        stats: list[Any] = rng.choice(([1, 2**62 + i, 3], [0, -i], [5, "42"], [9], []))
        name: Any = rng.choice((*NAMES, "", None, 42, -7, 2.5, True, "missing"))
        host: Any = rng.choice((f"h{i % 9}", "", None, "missing", "a,b"))
        record: dict[str, Any] = {
            "id": i if i % 5 else str(i),
            "event": {"time": iso_input(ns, digits, rng.choice(ZONES), rng.choice("T ")),
                      "epoch": epoch},
            "m": {"score": score, "stats": stats},
            "tags": rng.choice(TAG_VALUES),
        }
        if ok is not None:
            record["m"]["ok"] = ok
        if name != "missing":
            record["user"] = {"name": name, "id": i}
        if host != "missing":
            record["host"] = host
        records.append(record)
        second = stats[1] if len(stats) > 1 else None
        want.append({
            "id": i,
            "at": ns,
            "at_ms": ns // 10**6,
            "seen": epoch * 10**9,
            "score": None if score is None else float(score),
            "ok": None if ok is None else ok in (True, "true"),
            "second": None if second is None else int(second),
            "name": None if name in ("", None, "missing") else
                    ("true" if name is True else str(name)),
            "host": None if host in ("", None, "missing") else host,
            "tags": record["tags"],
        })
    return records, want


def expected(want: list[dict[str, Any]], names: list[str], fmt: str) -> list[tuple]:
    """Parquet: timestamps as epoch microseconds, json as its compact text; NDJSON:
    timestamps as their ISO 8601 text, json as the value itself."""
    rows = []
    for values in want:
        row = []
        for name in names:
            value = values[name]
            if name in TIMESTAMPS:
                value = value // 1000 if fmt == "parquet" else iso_output(value)
            elif name == "tags" and fmt == "parquet":
                value = orjson.dumps(value).decode()
            row.append(value)
        rows.append(tuple(row))
    return rows


def column_names(columns: list[Any]) -> list[str]:
    return [c if isinstance(c, str) else c["name"] for c in columns]


def parquet_rows(files: list[Path], names: list[str]) -> list[tuple]:
    con = duckdb.connect()
    paths = [str(f) for f in files]
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                             "read_parquet($f))", {"f": paths}).fetchall())
    assert list(types) == names
    assert {name: types[name] for name in ("id", "at", "at_ms", "seen", "score", "ok")} == {
        "id": "BIGINT", "at": "TIMESTAMP WITH TIME ZONE", "at_ms": "BIGINT",
        "seen": "TIMESTAMP WITH TIME ZONE", "score": "DOUBLE", "ok": "BOOLEAN"}
    cells = ", ".join(f'epoch_us("{n}")' if n in TIMESTAMPS else f'"{n}"' for n in names)
    return con.execute(f"SELECT {cells} FROM read_parquet($f) ORDER BY id",
                       {"f": paths}).fetchall()


def ndjson_rows(files: list[Path], names: list[str]) -> list[tuple]:
    """DuckDB's rows of the files; each JSON value's own type is checked too (a number
    written as a string would pass a typed read)."""
    con = duckdb.connect()
    objects = con.execute(
        "SELECT json FROM read_ndjson_objects($f)", {"f": [str(f) for f in files]}).fetchall()
    kinds = {"id": int, "at_ms": int, "second": int, "score": float, "ok": bool,
             "at": str, "seen": str, "name": str, "host": str}
    for (text,) in objects:
        value = orjson.loads(text)
        assert list(value) == names
        assert all(value[k] is None or type(value[k]) is kind for k, kind in kinds.items())
    typed = {"id": "BIGINT", "at_ms": "BIGINT", "second": "BIGINT", "score": "DOUBLE",
             "ok": "BOOLEAN", "tags": "JSON"}
    types = {n: typed.get(n, "VARCHAR") for n in names}
    rows = con.execute("SELECT * FROM read_json($f, format = 'newline_delimited', "
                       "columns = $c) ORDER BY id",
                       {"f": [str(f) for f in files], "c": types}).fetchall()
    position = names.index("tags") if "tags" in names else -1
    return [tuple(orjson.loads(cell) if i == position and cell is not None else cell
                  for i, cell in enumerate(row)) for row in rows]


@pytest.mark.parametrize("fmt", ["parquet", "ndjson"])
@pytest.mark.parametrize("with_json", [False, True], ids=["typed_query", "json_column"])
def test_mapped_stage_reads_back_cell_by_cell(tmp_path: Path, fmt: str,
                                              with_json: bool) -> None:
    columns = [*COLUMNS, TAGS] if with_json else COLUMNS
    names = column_names(columns)
    records, want = generate(N, seed=len(names) * 7 + len(fmt))
    write_ndjson(tmp_path / "in.ndjson", records)
    sink = {"type": "stage", "url": f"file://{tmp_path}/stage/", "columns": columns,
            "format": fmt, "fsync": False, "max_file_records": 700,
            "batch": {"max_records": BATCH}}
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                          + file_source(tmp_path / "in.ndjson", name="f", follow=False)
                          + "[sinks.st]\n" + toml_keys(**sink))

    done = run_cli("run", "-c", str(config))

    assert done.code == 0, done.stderr[-3000:]
    stats = done.summary["sinks"]["st"]
    assert stats["delivered"] == N and stats["dead_lettered"] == 0
    assert stats.get("native_encode_fallbacks", 0) == 0  # every batch written by DuckDB
    files = sorted((tmp_path / "stage").glob(f"*/part-*.{fmt}"))
    assert len(files) >= 3
    read = parquet_rows if fmt == "parquet" else ndjson_rows
    got = read(files, names)
    wanted = expected(want, names, fmt)
    assert len(got) == len(wanted)
    for row, want_row in zip(got, wanted, strict=True):
        assert row == want_row, (row, want_row)
