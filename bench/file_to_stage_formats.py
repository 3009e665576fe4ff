"""Benchmark: file -> local stage in Parquet (and other formats) against CSV (issue #18).

    python -m bench.file_to_stage_formats [--records 1000000] [--runs 3] [--workdir DIR]
                                          [--seed 1] [--formats parquet,ndjson,csv-gzip]

One process each, alternating: file -> stage in CSV (as always) and in each format of
``--formats`` (``FORMAT[-COMPRESSION]``), every bench.gen column, one file of up to
1,000,000 records.  Beside records/s: the staged bytes and the time DuckDB takes to load
the stage into a table the way the DuckDB loader reads it (``INSERT INTO ... SELECT *
FROM read_csv / read_json / read_parquet``), measured after each run, outside its
timing.  Prints the table and each format's ratio to CSV (Parquet's target >= 0.9x).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb

from bench.compare import compare
from bench.configs import config_text, file_source, stage_sink
from bench.file_to_stage import prepare_input
from bench.gen import FIELDS
from bench.harness import BenchError, Result, Run, Scenario, script_parser, streamer_scenario
from bench.output_check import expect_output
from streamer.sinks.stage.config import CsvOptions
from streamer.sinks.stage.formats import duckdb_reader

CSV = "file -> stage"


def load_seconds(stage: Path, fmt: str) -> float:
    """DuckDB's time to load the staged files into a table of VARCHAR columns."""
    files = sorted(str(p) for p in stage.rglob("part-*") if p.is_file())
    types = dict.fromkeys(FIELDS, "VARCHAR")
    reader, params = duckdb_reader(fmt, types, CsvOptions(), "store_rejects = false")
    con = duckdb.connect(str(stage.parent / "load.duckdb"))
    try:
        con.execute("CREATE TABLE t (" + ", ".join(f'"{c}" VARCHAR' for c in FIELDS) + ")")
        started = time.perf_counter()
        rows = con.execute(f"INSERT INTO t BY NAME SELECT * FROM {reader}",
                           {"files": files, **params}).fetchone()[0]
        took = time.perf_counter() - started
    finally:
        con.close()
    return took if rows else float("nan")


def format_scenario(workdir: Path, input_path: Path, n: int, fmt: str,
                    compression: str | None = None, *, timeout: float | None = None,
                    keep: bool = False) -> Scenario:
    """``streamer run``: file -> local stage in `fmt` (load none); the stage must hold
    every record of the input once; each run's staged bytes and DuckDB load time go
    into its extra facts."""
    label = fmt if compression is None else f"{fmt} {compression}"
    name = CSV if fmt == "csv" and compression is None else f"{CSV}, {label}"
    keys = f'format = "{fmt}"\n' + (f'compression = "{compression}"\n' if compression else "")

    contents = expect_output(input_path, FIELDS)

    def check(run: Run, run_dir: Path, i: int) -> None:
        files = [p for p in (run_dir / "stage").rglob("part-*") if p.is_file()]
        if not files:
            raise BenchError(f"{name} run {i + 1}: stage dir is empty")
        contents(f"{name} run {i + 1}", files)
        run.extra["output_files"] = len(files)
        run.extra["output_bytes"] = sum(p.stat().st_size for p in files)
        run.extra["duckdb_load_s"] = load_seconds(run_dir / "stage", fmt)

    return streamer_scenario(
        name, n, workdir, f"fmt-{label.replace(' ', '-')}",
        lambda d, _i: config_text(d / "data", file_source(input_path),
                                  stage_sink((d / "stage").as_uri() + "/", extra=keys)),
        sink="stage", check=check, keep=keep, timeout=timeout, inputs=[input_path])


def _extra(result: Result, key: str) -> float:
    return statistics.median(r.extra[key] for r in result.runs)


def sizes_table(results: Sequence[Result]) -> str:
    head = f"{'scenario':<32} {'staged MB':>10} {'DuckDB load s':>14}"
    lines = [head, "-" * len(head)]
    lines += [f"{r.name:<32} {_extra(r, 'output_bytes') / 1e6:>10.1f} "
              f"{_extra(r, 'duckdb_load_s'):>14.2f}" for r in results]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = script_parser(__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--formats", default="parquet",
                        help="comma-separated FORMAT[-COMPRESSION], e.g. parquet,ndjson-zstd")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve()
    source = prepare_input(workdir, args.records, args.seed)
    chosen = [tuple(f.split("-", 1)) if "-" in f else (f, None)
              for f in args.formats.split(",") if f]
    scenarios = [format_scenario(workdir, source, args.records, "csv")]
    scenarios += [format_scenario(workdir, source, args.records, fmt, compression)
                  for fmt, compression in chosen]
    results, ratios = compare(scenarios, args.runs, CSV, targets={
        s.name: 0.9 for s in scenarios if s.name.endswith("parquet")})
    print()
    print(sizes_table(list(results.values())))
    print(json.dumps({"over_csv": {name: ratio.median for name, ratio in ratios.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
