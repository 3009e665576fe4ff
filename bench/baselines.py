"""Baselines for NDJSON -> CSV conversion.

* ``tight_loop``: the floor a Python ingester should be compared with -- one plain loop
  that ``orjson.loads`` each line and writes ``[rec.get(c) for c in columns]`` with
  ``csv.writer`` into a single CSV file with a header (None -> empty field).
* ``duckdb_copy``: the native ceiling -- DuckDB ``COPY (SELECT * FROM read_ndjson(...))
  TO out (HEADER)``, with explicit column types (``bench.gen.COLUMN_TYPES``) so the
  output matches the tight loop's (``ts`` stays a string).  DuckDB uses all cores.

Run each in its own process so the harness can measure its RSS:

    python -m bench.baselines tight IN OUT [--columns a,b,c] [--shape S]
    python -m bench.baselines duckdb IN OUT [--threads N] [--shape S]

``--shape`` (``bench.gen.SHAPES``) picks the columns and types of that shape's records;
the tight loop writes the cells of its JSON-typed (nested) columns as ``orjson.dumps``
text, as the stage sink does.

Both print one JSON summary line on stderr, e.g. ``{"baseline": "tight", "records": N,
"seconds": S, "records_per_s": R}``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

from bench.gen import COLUMN_TYPES, FIELDS, SHAPES, shape_types

__all__ = ["duckdb_copy", "main", "tight_loop"]

_BUF = 1 << 20


def tight_loop(in_path: str | Path, out_path: str | Path, columns: Sequence[str] = FIELDS,
               nested: Sequence[str] = ()) -> int:
    """Convert NDJSON ``in_path`` to CSV ``out_path``; return the number of records.

    Blank lines are skipped; any other line that is not a JSON object raises.  The
    ``nested`` columns (objects, arrays) are written as their JSON text.
    """
    loads = orjson.loads
    cols = tuple(columns)
    if nested:
        return _tight_loop_nested(in_path, out_path, cols, [cols.index(c) for c in nested])
    n = 0
    with (
        open(in_path, "rb", buffering=_BUF) as src,
        open(out_path, "w", encoding="utf-8", newline="", buffering=_BUF) as dst,
    ):
        writer = csv.writer(dst, lineterminator="\r\n")  # as the stage sink: RFC 4180
        writerow = writer.writerow
        writerow(cols)
        for line in src:
            if line.isspace():
                continue
            rec = loads(line)
            writerow([rec.get(c) for c in cols])
            n += 1
    return n


def _tight_loop_nested(in_path: str | Path, out_path: str | Path, cols: tuple[str, ...],
                       nested: list[int]) -> int:
    """``tight_loop`` with the cells at the ``nested`` indices as JSON text."""
    loads, dumps = orjson.loads, orjson.dumps
    n = 0
    with (
        open(in_path, "rb", buffering=_BUF) as src,
        open(out_path, "w", encoding="utf-8", newline="", buffering=_BUF) as dst,
    ):
        writer = csv.writer(dst, lineterminator="\r\n")
        writerow = writer.writerow
        writerow(cols)
        for line in src:
            if line.isspace():
                continue
            rec = loads(line)
            row = [rec.get(c) for c in cols]
            for k in nested:
                value = row[k]
                if value is not None:
                    row[k] = dumps(value).decode()
            writerow(row)
            n += 1
    return n


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def duckdb_copy(
    in_path: str | Path,
    out_path: str | Path,
    column_types: Mapping[str, str] | None = None,
    threads: int | None = None,
) -> int:
    """DuckDB NDJSON -> CSV copy (header, comma, ``"`` quoting); return the row count.

    ``column_types`` defaults to ``bench.gen.COLUMN_TYPES``; pass ``{}`` to let DuckDB
    infer types (it then turns ``ts`` into a TIMESTAMP, which changes the output).
    """
    import duckdb  # imported lazily: the tight loop must not pay for it

    types = COLUMN_TYPES if column_types is None else column_types
    src = f"read_ndjson({_sql_str(str(in_path))}"
    if types:
        struct = ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in types.items())
        src += f", columns={{{struct}}}"
    src += ")"
    con = duckdb.connect()
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        row = con.execute(
            f"COPY (SELECT * FROM {src}) TO {_sql_str(str(out_path))} (HEADER, DELIMITER ',')"
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.baselines", description="NDJSON->CSV baselines"
    )
    sub = ap.add_subparsers(dest="baseline", required=True)
    tight = sub.add_parser("tight", help="single Python loop: orjson.loads + csv.writer")
    tight.add_argument("input", type=Path)
    tight.add_argument("output", type=Path)
    tight.add_argument("--columns", help="comma-separated column list (default: the shape's)")
    tight.add_argument("--shape", choices=SHAPES, default="default")
    duck = sub.add_parser("duckdb", help="DuckDB COPY read_ndjson -> CSV")
    duck.add_argument("input", type=Path)
    duck.add_argument("output", type=Path)
    duck.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all)")
    duck.add_argument("--infer", action="store_true", help="let DuckDB infer column types")
    duck.add_argument("--shape", choices=SHAPES, default="default")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    types = shape_types(args.shape)
    if args.baseline == "tight":
        cols = tuple(args.columns.split(",")) if args.columns else tuple(types)
        nested = [c for c in cols if types.get(c) == "JSON"]
        n = tight_loop(args.input, args.output, cols, nested)
    else:
        n = duckdb_copy(args.input, args.output, {} if args.infer else types, args.threads)
    dt = time.perf_counter() - t0
    summary = {
        "baseline": args.baseline,
        "records": n,
        "seconds": round(dt, 4),
        "records_per_s": round(n / dt) if dt > 0 else None,
    }
    print(orjson.dumps(summary).decode(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
