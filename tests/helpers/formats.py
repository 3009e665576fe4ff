"""Records with awkward values for the stage's output formats, the cells they
should give in each format, and stage files read back (DuckDB, gzip, zstd)."""

from __future__ import annotations

import csv
import gzip
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import zstandard

from streamer.mapping.spec import ColumnSpec
from streamer.mapping.values import Bad, RecordMapper

COLUMNS: list[Any] = [
    {"name": "id", "from": "id", "type": "integer"},
    {"name": "at", "from": "event.time", "type": "timestamp"},
    {"name": "at_ms", "from": "event.time", "type": "timestamp", "format": "epoch_ms"},
    {"name": "score", "from": "m.score", "type": "double"},
    {"name": "ok", "from": "m.ok", "type": "boolean"},
    {"name": "tags", "from": "tags", "type": "json"},
    {"name": "name", "from": "user.name"},
    "host",
]
NAMES = [c if isinstance(c, str) else c["name"] for c in COLUMNS]
NDJSON_TYPES = {"id": "BIGINT", "at": "VARCHAR", "at_ms": "BIGINT", "score": "DOUBLE",
                "ok": "BOOLEAN", "tags": "JSON", "name": "VARCHAR", "host": "VARCHAR"}
PARQUET_TYPES = {"id": "BIGINT", "at": "TIMESTAMP WITH TIME ZONE", "at_ms": "BIGINT",
                 "score": "DOUBLE", "ok": "BOOLEAN", "tags": "VARCHAR", "name": "VARCHAR",
                 "host": "VARCHAR"}
NAME_TEXTS = ["plain", "comma, and \"quotes\"", "two\r\nlines", "ünïcødé ✓", "", "#hash",
              "tab\there", "  spaced  "]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOSTS: list[Any] = ["h1", 42, 2.5, None, {"nested": [1, {"x": "y"}]}, "", True]
SUFFIXES = {("csv", None): ".csv", ("csv", "gzip"): ".csv.gz", ("csv", "zstd"): ".csv.zst",
            ("ndjson", None): ".ndjson", ("ndjson", "gzip"): ".ndjson.gz",
            ("ndjson", "zstd"): ".ndjson.zst", ("parquet", None): ".parquet",
            ("parquet", "zstd"): ".parquet", ("parquet", "none"): ".parquet",
            ("parquet", "gzip"): ".parquet"}


def records(n: int, bad_every: int = 97, refused: range = range(0)) -> list[dict[str, Any]]:
    """n records; every `bad_every`-th has a value the mapping cannot convert; those
    in `refused` hold a nested number the native encoder refuses (1e21: DuckDB
    writes it otherwise than Python), so their batches are encoded per record."""
    out = []
    for i in range(n):
        second, fraction = divmod(i * 7919, 1000)
        year = 2010 + i % 30  # leap days, and every 101st a Feb 29 of a common year
        day = 29 if (year % 4 == 0 and i % 2) or i % 101 == 100 else 28
        record: dict[str, Any] = {
            "id": i,
            "event": {"time": f"{year}-02-{day}T{i % 24:02d}:"
                              f"{i % 60:02d}:{second % 60:02d}.{fraction:03d}"
                              + ("Z", "+05:30", "-08:00")[i % 3]},
            "m": {"score": i / 7 if i % 11 else None, "ok": i % 2 == 0},
            "tags": ["a", f"t{i % 5}"] if i % 4 else {"k": i, "s": "x,y"},
            "user": {"name": NAME_TEXTS[i % len(NAME_TEXTS)]} if i % 13 else {},
        }
        host = HOSTS[i % len(HOSTS)]
        if i in refused:
            host = {"big": 1e21}
        if host is not None:
            record["host"] = host
        if i % bad_every == bad_every - 1:
            record["id"] = "n/a"
        out.append(record)
    return out


def text_cells(rows: list[dict[str, Any]]) -> tuple[dict[int, list[str]], list[tuple]]:
    """Each convertible record's cells as CSV has them ('' for null), by id, and the
    (id, reason) of the records the mapping refuses, in order."""
    mapper = RecordMapper([ColumnSpec.model_validate(c) for c in COLUMNS])
    cells, bad = {}, []
    for record in rows:
        try:
            row = mapper.cells(record, "")
        except Bad as exc:
            bad.append((record["id"], str(exc)))
            continue
        cells[int(row[0])] = row
    return cells, bad


def _iso_us(text: str) -> int:
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(microseconds=1)


def typed(cells: list[str], fmt: str) -> tuple:
    """The values a row of `fmt` holds (parquet: `at` as epoch microseconds, json
    as text; ndjson: `at` as text, json as its value); '' is null."""
    i, at, at_ms, score, ok, tags, name, host = (c if c != "" else None for c in cells)
    at_value: Any = at if fmt != "parquet" or at is None else _iso_us(at)
    tags_value: Any = orjson.loads(tags) if fmt == "ndjson" and tags else tags
    return (int(i), at_value, None if at_ms is None else int(at_ms),
            None if score is None else float(score), None if ok is None else ok == "true",
            tags_value, name, host)


def file_bytes(data: bytes, name: str) -> bytes:
    """A stage file's content, decompressed by Python's own readers."""
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def python_rows(files: list[Path], fmt: str) -> list[tuple]:
    """The rows of CSV / NDJSON stage files as Python reads them."""
    rows = []
    for path in files:
        text = file_bytes(path.read_bytes(), path.name)
        if fmt == "csv":
            lines = list(csv.reader(io.StringIO(text.decode(), newline="")))
            assert lines[0] == NAMES
            rows += [typed(line, "csv") for line in lines[1:]]
        else:
            for line in text.splitlines():
                value = orjson.loads(line)
                assert list(value) == NAMES
                rows.append(tuple(value.values()))
    return sorted(rows, key=lambda r: int(r[0]))


def duckdb_rows(files: list[Path], fmt: str) -> list[tuple]:
    """The rows of stage files as DuckDB reads them (compression from the names)."""
    con = duckdb.connect()
    names = [str(f) for f in files]
    if fmt == "parquet":
        types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE "
                                 "SELECT * FROM read_parquet($f))", {"f": names}).fetchall())
        assert types == PARQUET_TYPES
        query = ("SELECT id, epoch_us(\"at\"), at_ms, score, ok, tags, name, host "
                 "FROM read_parquet($f) ORDER BY id")
        return con.execute(query, {"f": names}).fetchall()
    if fmt == "ndjson":
        rows = con.execute("SELECT * FROM read_json($f, format = 'newline_delimited', "
                           "columns = $c) ORDER BY id", {"f": names, "c": NDJSON_TYPES}).fetchall()
        return [(*r[:5], None if r[5] is None else orjson.loads(r[5]), *r[6:]) for r in rows]
    rows = con.execute("SELECT * FROM read_csv($f, header = true, all_varchar = true, "
                       "auto_detect = false, columns = $c) ORDER BY id::BIGINT",
                       {"f": names, "c": dict.fromkeys(NAMES, "VARCHAR")}).fetchall()
    return [typed([c or "" for c in r], "csv") for r in rows]


def want_rows(cells: dict[int, list[str]], fmt: str) -> list[tuple]:
    return [typed(cells[i], fmt) for i in sorted(cells)]
