"""The mapped query's timestamps as the product's C functions inside DuckDB against
their SQL (issue #18, sessions 15-16).

    python -m bench.mapped_c_timestamps [--batch 20000] [--runs 30] [--seed 1]

Runs the ``stage_mapped`` mapping's typed query over one batch of the bench records,
three ways alternating, each on a connection as the native encoder's for a mapping
(``streamer.mapping.c_functions.mapping_connection``: the C functions of
``streamer/mapping/streamer_ts.c``, built by setup.py, loaded and checked), CPU of
the query (``thread_time``), fastest and median of ``--runs``:

* ``sql``: the typed query without the C functions (the ISO regular expression, the
  TIMESTAMPTZ cast, ``strftime``...);
* ``c``: with them (``ts`` ISO 8601 -> epoch_ms by ``streamer_iso_epoch_ms``,
  ``time`` epoch_s -> ISO 8601 by ``streamer_epoch_s_iso``), as the product runs it
  when the extension is built;
* ``none``: both timestamp columns copied as they are (the floor).

The ``sql`` and ``c`` outputs must be the same bytes (exit code 1 otherwise; exit code
2 when the extension is not built or does not load).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from bench.file_to_stage_mapped import mapping, nest
from bench.gen import iter_records
from streamer.mapping import sql_typed
from streamer.mapping.c_functions import EXTENSION, mapping_connection
from streamer.mapping.spec import ColumnSpec

VARIANTS = ("sql", "c", "none")


@contextlib.contextmanager
def timestamps(variant: str) -> Iterator[None]:
    """TypedMappingQuery built with both timestamp columns copied as they are
    (`none`), or as the product builds them."""
    original = sql_typed._timestamp

    def copied(spec: ColumnSpec, s: str, v: str, c_functions: bool = False) -> sql_typed._Column:
        return sql_typed._Column(s, unsure="false")

    if variant == "none":
        sql_typed._timestamp = copied
    try:
        yield
    finally:
        sql_typed._timestamp = original


def copy_statement(variant: str, data: Path, out: Path) -> str:
    with timestamps(variant):
        typed = sql_typed.TypedMappingQuery.of(
            [ColumnSpec.model_validate(c) for c in mapping()], "", c_functions=variant == "c")
    assert typed is not None
    reader = (f"read_json('{data}', format = 'newline_delimited', "
              f"columns = {typed.schema()}, maximum_object_size = 1048576)")
    return f"COPY ({typed.rows(reader)}) TO '{out}' (FORMAT csv, HEADER false, USE_TMP_FILE false)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=20_000, help="records a batch")
    parser.add_argument("--runs", type=int, default=30, help="runs of each variant")
    parser.add_argument("--seed", type=int, default=1, help="bench.gen seed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mapped-c-") as tmp:
        directory = Path(tmp)
        data = directory / "batch.ndjson"
        data.write_bytes(b"".join(orjson.dumps(nest(r)) + b"\n"
                                  for r in iter_records(args.batch, args.seed)))
        runs = {}
        for v in VARIANTS:
            con, loaded = mapping_connection(1, [str(data), str(directory / f"{v}.csv")])
            if not loaded:
                print(f"the C functions are not loaded ({EXTENSION})", file=sys.stderr)
                return 2
            runs[v] = (con, copy_statement(v, data, directory / f"{v}.csv"))
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
