"""The mapped query's two timestamps computed by C functions inside DuckDB (issue #18,
session 15): what they would save, measured; not in the product.

    python -m bench.mapped_c_timestamps [--batch 20000] [--runs 30] [--seed 1]

``bench/duckdb_ext/streamer_ts.c`` is a DuckDB extension of the C API (ABI
``C_STRUCT``, loaded with ``allow_unsigned_extensions``) with two scalar functions:
``streamer_iso_us(VARCHAR)`` (the typed query's ISO 8601 form, ``FAST_ISO``, with a
real date, to epoch microseconds; NULL otherwise) and ``streamer_epoch_s_iso(VARCHAR)``
(the canonical text of epoch seconds in years 1-9999 to ``YYYY-MM-DDTHH:MM:SSZ``;
NULL otherwise).  This script builds it with ``cc`` into a temporary directory,
appends DuckDB's 512-byte metadata footer, and runs the ``stage_mapped`` mapping's
typed query over one batch of the bench records, three ways alternating, CPU of
the query (``thread_time``), fastest and median of ``--runs``:

* ``sql``: the typed query as the product runs it (the ISO regular expression, the
  TIMESTAMPTZ cast, ``strftime``...);
* ``c``: ``ts``'s regular expression and cast replaced by ``streamer_iso_us``,
  ``time``'s cast, canonical test and ``strftime`` by ``streamer_epoch_s_iso``;
* ``none``: both timestamp columns copied as they are (the floor).

The ``sql`` and ``c`` outputs must be the same bytes (exit code 1 otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import orjson

from bench.file_to_stage_mapped import mapping, nest
from bench.gen import iter_records
from streamer.mapping import sql_typed
from streamer.mapping.spec import ColumnSpec

SOURCE = Path(__file__).with_name("duckdb_ext") / "streamer_ts.c"
NAME = "streamer_ts"
VARIANTS = ("sql", "c", "none")


def footer(platform: str = "linux_amd64", c_api: str = "v1.2.0") -> bytes:
    """DuckDB's extension metadata: 8 fields of 32 bytes, last first, then 256 bytes
    of signature (none: the extension is unsigned)."""
    fields = ["4", platform, c_api, "0.1", "C_STRUCT", "", "", ""]
    return b"".join(f.encode().ljust(32, b"\0") for f in reversed(fields)) + bytes(256)


def build(directory: Path) -> Path:
    """The extension built from SOURCE in `directory` (its file name gives DuckDB the
    name of its entry point, ``streamer_ts_init_c_api``)."""
    library = directory / f"{NAME}.so"
    subprocess.run(["cc", "-O2", "-std=c99", "-shared", "-fPIC", "-Wall", "-Wextra",
                    "-Wno-unused-parameter", "-o", str(library), str(SOURCE), "-ldl"],
                   check=True)
    extension = directory / f"{NAME}.duckdb_extension"
    extension.write_bytes(library.read_bytes() + footer())
    return extension


def connect(extension: Path) -> duckdb.DuckDBPyConnection:
    """A connection as the native encoder's (one thread, UTC, no filter pushdown),
    with the extension loaded."""
    con = duckdb.connect(config={"threads": 1, "allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{extension}'")
    con.execute("SET disabled_optimizers = 'filter_pushdown'")
    con.execute("SET TimeZone = 'UTC'")
    return con


@contextlib.contextmanager
def timestamps(variant: str) -> Iterator[None]:
    """TypedMappingQuery built with the `variant`'s timestamp columns (of stage_mapped:
    ``ts`` ISO 8601 -> epoch_ms, ``time`` epoch_s -> ISO 8601)."""
    original = sql_typed._timestamp

    def replaced(spec: ColumnSpec, s: str, v: str) -> sql_typed._Column:
        if variant == "none":
            return sql_typed._Column(s, unsure="false")
        column = original(spec, s, v)
        if variant == "c" and spec.parse == "iso8601":
            regex = f"regexp_full_match({s}, {sql_typed.sql_string(sql_typed.FAST_ISO)})"
            assert column.present_ok is not None and regex in column.present_ok
            column.casts[0] = f"streamer_iso_us({s}) AS {v}u"
            column.present_ok = column.present_ok.replace(regex, f"{v}u IS NOT NULL")
        elif variant == "c" and spec.parse == "epoch_s" and spec.format == "iso8601":
            column = sql_typed._Column(v, sure=f"{v} IS NOT NULL",
                                       casts=[f"streamer_epoch_s_iso({s}) AS {v}"])
        return column

    sql_typed._timestamp = replaced
    try:
        yield
    finally:
        sql_typed._timestamp = original


def copy_statement(variant: str, data: Path, out: Path) -> str:
    with timestamps(variant):
        typed = sql_typed.TypedMappingQuery.of(
            [ColumnSpec.model_validate(c) for c in mapping()], "")
    assert typed is not None
    reader = (f"read_json('{data}', format = 'newline_delimited', "
              f"columns = {typed.schema()}, maximum_object_size = 1048576)")
    return f"COPY ({typed.rows(reader)}) TO '{out}' (FORMAT csv, HEADER false)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=20_000, help="records a batch")
    parser.add_argument("--runs", type=int, default=30, help="runs of each variant")
    parser.add_argument("--seed", type=int, default=1, help="bench.gen seed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mapped-c-") as tmp:
        directory = Path(tmp)
        extension = build(directory)
        data = directory / "batch.ndjson"
        data.write_bytes(b"".join(orjson.dumps(nest(r)) + b"\n"
                                  for r in iter_records(args.batch, args.seed)))
        runs = {v: (connect(extension), copy_statement(v, data, directory / f"{v}.csv"))
                for v in VARIANTS}
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.runs):
            for variant, (con, statement) in runs.items():
                start = time.thread_time()
                written = con.execute(statement).fetchone()
                times[variant].append(time.thread_time() - start)
                if written is None or written[0] != args.batch:
                    raise SystemExit(f"{variant}: {written} rows of {args.batch}")
        same = (directory / "sql.csv").read_bytes() == (directory / "c.csv").read_bytes()
    print(f"{args.batch}-record batch, {args.runs} runs a variant, CPU ms (fastest / median)")
    for variant, spent in times.items():
        print(f"{variant:<5} {min(spent) * 1e3:8.1f} / {statistics.median(spent) * 1e3:8.1f}")
    print("sql and c outputs: " + ("the same bytes" if same else "DIFFERENT"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
