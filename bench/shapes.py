"""Benchmark: file -> local stage on every record shape, each against its own baselines.

    python -m bench.shapes [--records 500000] [--large-records N] [--runs 3]
                           [--shapes small,default,large] [--workers 2] [--verify-output]
                           [--seed 1] [--workdir DIR]

For each shape of ``bench.gen.SHAPES`` (small numeric ~300 B, the default 365 B, large
nested logs ~2 KB), alternating per repetition: the tight loop of that shape, ``streamer
run`` file -> local stage (every column, ``load = none``) in one process, the same with
``workers = --workers`` (the input cut into that many files), and DuckDB's COPY ceiling
of that shape.  Prints a markdown table per shape (records/s, CPU per record, ratios to
the tight loop paired per repetition, and of CPU per record: on a shared machine the
CPU time moves less than the wall time) and writes ``bench/results/shapes-<UTC>.json``.
``--verify-output`` also checks, outside the timing, that the one-process stage's CSV
holds every record and is byte-identical to the tight loop's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.file_to_stage import (
    _count_stage_rows,
    _sha256,
    baseline_scenario,
    ensure_input,
    prepare_input,
    stage_scenario,
)
from bench.gen import SHAPES, shape_types
from bench.harness import (
    RESULTS_DIR,
    BenchError,
    Result,
    Run,
    Scenario,
    paired_ratio,
    run_interleaved,
    script_parser,
    write_results,
)

#: Targets of issue #20 (item 4), records/s over the tight loop's.
TARGETS = {"stage_1w": 1.8, "stage": 2.5}
_MIB = 1024 * 1024


def shape_scenarios(shape: str, workdir: Path, n: int, seed: int, workers: int,
                    verify: bool, timeout: float) -> dict[str, Scenario]:
    """The four rows of one shape, keyed ``tight``, ``stage_1w``, ``stage``, ``duckdb``."""
    input_path = prepare_input(workdir, n, seed, shape)
    columns = list(shape_types(shape))
    digests: dict[int, str] = {}

    def tight_check(out: Path, run: Run, i: int) -> None:
        digests[i] = _sha256(out)

    def stage_check(stage: Path, run: Run, i: int) -> None:
        rows = _count_stage_rows(stage)
        if rows != n:
            raise BenchError(f"{shape}: {rows} rows in the stage, expected {n}")
        csvs = [p for p in stage.rglob("*.csv") if p.is_file()]
        if len(csvs) == 1 and i in digests:
            run.extra["identical_to_tight"] = same = _sha256(csvs[0]) == digests[i]
            if not same:
                raise BenchError(f"{shape} run {i + 1}: the stage CSV differs from the "
                                 "tight loop's")

    common: dict[str, Any] = {"timeout": timeout, "shape": shape}
    stage: dict[str, Any] = {"timeout": timeout, "columns": columns, "shape": shape,
                             "name": f"{shape}: file -> stage", "tag": f"stage-{shape}"}
    return {
        "tight": baseline_scenario("tight", workdir, input_path, n, name=f"{shape}: tight loop",
                                   check=tight_check if verify else None, **common),
        "stage_1w": stage_scenario(workdir, input_path, n, check=stage_check if verify else None,
                                   **stage),
        "stage": stage_scenario(workdir, input_path, n, workers=workers, **stage),
        "duckdb": baseline_scenario("duckdb", workdir, input_path, n,
                                    name=f"{shape}: duckdb COPY", **common),
    }  # fmt: skip


def _cpu_us(result: Result) -> float:
    return statistics.median(r.cpu_s for r in result.runs) / result.records * 1e6


def shape_table(shape: str, input_bytes: int, results: dict[str, Result]) -> tuple[str, dict]:
    """The markdown table of one shape, and its figures for the JSON."""
    tight = results["tight"]
    n = tight.records
    lines = [
        f"**{shape}** ({input_bytes / n:.0f} B/record, {n:,} records)",
        "",
        "| row | records/s median (min-max) | x tight loop (paired) | cpu us/record | "
        "tight loop's cpu / row's | peak RSS MiB | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    figures: dict[str, Any] = {"bytes_per_record": input_bytes / n}
    for key, result in results.items():
        ratio = paired_ratio(result, tight)
        target = TARGETS.get(key)
        verdict = "-" if target is None else (
            f">= {target}x: {'met' if ratio.median >= target else '**below**'}")
        rps = result.records_per_s
        lines.append(
            f"| {result.name.split(': ', 1)[1]} | {rps.median:,.0f} ({rps.min:,.0f}-"
            f"{rps.max:,.0f}) | {ratio.median:.2f} ({ratio.min:.2f}-{ratio.max:.2f}) | "
            f"{_cpu_us(result):.2f} | {_cpu_us(tight) / _cpu_us(result):.2f} | "
            f"{result.peak_rss.median / _MIB:.0f} | {verdict} |")
        figures[key] = {"ratio_to_tight": ratio.__dict__, "cpu_us_per_record": _cpu_us(result),
                        "target": target}
    return "\n".join(lines), figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = script_parser(__doc__)
    ap.add_argument("--records", type=int, default=500_000, help="records per run and shape")
    ap.add_argument("--large-records", type=int, default=None,
                    help="records of the large shape (default: a fifth of --records, about "
                    "the same bytes)")
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated, of SHAPES")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--verify-output", action="store_true")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--timeout", type=float, default=1800.0, help="per run, seconds")
    args = ap.parse_args(argv)
    args.shape_list = [s.strip() for s in args.shapes.split(",") if s.strip()]
    if unknown := set(args.shape_list) - set(SHAPES):
        ap.error(f"unknown shapes {sorted(unknown)}; choose from {', '.join(SHAPES)}")
    if args.large_records is None:
        args.large_records = max(1, args.records // 5)
    if min(args.records, args.large_records, args.runs) <= 0 or args.workers < 2:
        ap.error("--records and --runs must be positive, --workers at least 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir.resolve()
    tables, figures, ordered = [], {}, []
    for shape in args.shape_list:
        n = args.large_records if shape == "large" else args.records
        scenarios = shape_scenarios(shape, workdir, n, args.seed, args.workers,
                                    args.verify_output, args.timeout)
        print(f"{shape}: {n:,} records x {args.runs} runs", file=sys.stderr)
        try:
            by_name = run_interleaved(list(scenarios.values()), args.runs)
        except BenchError as e:
            print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
            return 1
        results = {key: by_name[s.name] for key, s in scenarios.items()}
        ordered += results.values()
        input_bytes = ensure_input(workdir, n, args.seed, shape)[0].stat().st_size
        table, figures[shape] = shape_table(shape, input_bytes, results)
        tables.append(table)
        print("\n" + table + "\n", flush=True)
    meta = {"records": args.records, "large_records": args.large_records, "runs": args.runs,
            "seed": args.seed, "workers": args.workers, "shapes": figures, "tables": tables}
    print(f"results: {write_results('shapes', ordered, meta, args.results_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
