"""Benchmark: file -> local stage on every record shape, each against its own baselines.

    python -m bench.shapes [--volume 1000000 | --records N [--large-records N] | --quick]
                           [--runs 3] [--shapes small,default,large] [--workers 2]
                           [--verify-output] [--seed 1] [--workdir DIR]

For each shape of ``bench.gen.SHAPES`` (small numeric ~300 B, the default 365 B, large
nested logs ~2 KB), alternating per repetition: the tight loop of that shape, ``streamer
run`` file -> local stage (every column, ``load = none``) in one process, the same with
``workers = --workers`` (the input cut into that many files), and DuckDB's COPY ceiling
of that shape.  Every shape gets the same input volume in bytes: that of ``--volume``
records of the default shape, by default ``bench.run``'s stage rows' input (1,000,000
records, 365 MB), so each shape's record count is that volume over its mean record size
(``records_for_volume``): a ratio that includes start-up depends on the input's size,
and is comparable only at a stated one.  Each row
also runs, in the same repetition, on ``FIXED_RECORDS`` records of the shape: that
run's wall and CPU are the row's fixed cost (start-up to the first record, the last
record to the exit), and ``(records - FIXED_RECORDS) / (wall - fixed wall)`` its steady
rate, reported beside the whole-run ratio (paired per repetition), never instead of it.
Prints a markdown table per shape (records/s, CPU per record, ratios to the tight loop,
of CPU per record: on a shared machine the CPU time moves less than the wall time) and
writes ``bench/results/shapes-<UTC>.json``.  ``--quick``: a twentieth of the volume and
one run (a smoke test, not a figure).  ``--verify-output`` also checks, outside the
timing, that the one-process stage's CSV holds every record and is byte-identical to
the tight loop's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from bench.file_to_stage import (
    _count_stage_rows,
    _sha256,
    baseline_scenario,
    ensure_input,
    prepare_input,
    stage_scenario,
)
from bench.gen import SHAPES, iter_shape, shape_types
from bench.harness import (
    RESULTS_DIR,
    BenchError,
    Result,
    Run,
    Scenario,
    Spread,
    paired_ratio,
    run_interleaved,
    script_parser,
    spread,
    write_results,
)

#: Targets of issue #20 (item 4), records/s over the tight loop's.
TARGETS = {"stage_1w": 1.8, "stage": 2.5}
ROWS = ("tight", "stage_1w", "stage", "duckdb")
#: The input volume, as records of the default shape: ``bench.run``'s stage rows' input.
VOLUME_RECORDS = 1_000_000
#: Records of each row's fixed-cost run (start-up and end with next to nothing to do).
FIXED_RECORDS = 1000
_SAMPLE = 5000  # records whose mean size sizes a shape's input
_MIB = 1024 * 1024


@cache
def record_bytes(shape: str, seed: int = 1) -> float:
    """The mean NDJSON size of a record of ``shape`` (``bench.gen.generate``'s bytes)."""
    sample = list(iter_shape(shape, _SAMPLE, seed))
    return sum(len(orjson.dumps(r)) + 1 for r in sample) / len(sample)


def records_for_volume(shape: str, volume: int = VOLUME_RECORDS, seed: int = 1) -> int:
    """Records of ``shape`` that make about the bytes of ``volume`` default records."""
    if shape == "default":
        return volume
    nbytes = volume * record_bytes("default", seed)
    return max(FIXED_RECORDS, round(nbytes / record_bytes(shape, seed)))


def shape_scenarios(shape: str, workdir: Path, n: int, seed: int, workers: int,
                    verify: bool, timeout: float) -> dict[str, Scenario]:
    """The rows of one shape, keyed ``tight``, ``stage_1w``, ``stage``, ``duckdb``, and
    each row's fixed-cost run on ``FIXED_RECORDS`` records, keyed ``<row>_fixed``."""
    rows = _rows(shape, workdir, n, seed, workers, verify, timeout, "")
    fixed = _rows(shape, workdir, FIXED_RECORDS, seed, workers, False, timeout, " (fixed cost)")
    return {**rows, **{f"{key}_fixed": scenario for key, scenario in fixed.items()}}


def _rows(shape: str, workdir: Path, n: int, seed: int, workers: int, verify: bool,
          timeout: float, suffix: str) -> dict[str, Scenario]:
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
    tag = f"stage-{shape}{'-fixed' if suffix else ''}"
    stage: dict[str, Any] = {"timeout": timeout, "columns": columns, "shape": shape,
                             "name": f"{shape}: file -> stage{suffix}", "tag": tag}
    return {
        "tight": baseline_scenario("tight", workdir, input_path, n,
                                   name=f"{shape}: tight loop{suffix}",
                                   check=tight_check if verify else None, **common),
        "stage_1w": stage_scenario(workdir, input_path, n, check=stage_check if verify else None,
                                   **stage),
        "stage": stage_scenario(workdir, input_path, n, workers=workers, **stage),
        "duckdb": baseline_scenario("duckdb", workdir, input_path, n,
                                    name=f"{shape}: duckdb COPY{suffix}", **common),
    }  # fmt: skip


def _cpu_us(result: Result) -> float:
    return statistics.median(r.cpu_s for r in result.runs) / result.records * 1e6


def steady_rates(whole: Result, fixed: Result) -> list[float]:
    """Per repetition, the records/s beyond the fixed-cost run: the records the whole
    run has more over the wall time it took more (paired by index)."""
    extra = whole.records - fixed.records
    return [extra / (w.wall_s - f.wall_s) if w.wall_s > f.wall_s else float("nan")
            for w, f in zip(whole.runs, fixed.runs, strict=False)]


def steady_ratio(results: dict[str, Result], key: str) -> Spread:
    """A row's steady rate over the tight loop's, paired per repetition."""
    row = steady_rates(results[key], results[f"{key}_fixed"])
    tight = steady_rates(results["tight"], results["tight_fixed"])
    return spread([a / b for a, b in zip(row, tight, strict=False)])


def shape_table(shape: str, input_bytes: int, results: dict[str, Result]) -> tuple[str, dict]:
    """The markdown table of one shape, and its figures for the JSON."""
    tight = results["tight"]
    n = tight.records
    lines = [
        f"**{shape}** ({input_bytes / n:.0f} B/record, {n:,} records, "
        f"{input_bytes / 1e6:.0f} MB)",
        "",
        "| row | records/s median (min-max) | x tight loop (paired) | cpu us/record | "
        "tight loop's cpu / row's | peak RSS MiB | fixed cost s: wall, cpu | steady rate "
        "x tight loop's | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    figures: dict[str, Any] = {"bytes_per_record": input_bytes / n, "input_bytes": input_bytes,
                               "records": n, "fixed_records": FIXED_RECORDS}
    for key in ROWS:
        result, fixed = results[key], results[f"{key}_fixed"]
        ratio, steady = paired_ratio(result, tight), steady_ratio(results, key)
        target = TARGETS.get(key)
        verdict = "-" if target is None else (
            f">= {target}x: {'met' if ratio.median >= target else '**below**'}")
        rps = result.records_per_s
        lines.append(
            f"| {result.name.split(': ', 1)[1]} | {rps.median:,.0f} ({rps.min:,.0f}-"
            f"{rps.max:,.0f}) | {ratio.median:.2f} ({ratio.min:.2f}-{ratio.max:.2f}) | "
            f"{_cpu_us(result):.2f} | {_cpu_us(tight) / _cpu_us(result):.2f} | "
            f"{result.peak_rss.median / _MIB:.0f} | {fixed.wall.median:.2f}, "
            f"{fixed.cpu.median:.2f} | {steady.median:.2f} ({steady.min:.2f}-"
            f"{steady.max:.2f}) | {verdict} |")
        figures[key] = {"ratio_to_tight": ratio.__dict__, "cpu_us_per_record": _cpu_us(result),
                        "fixed_wall_s": fixed.wall.__dict__, "fixed_cpu_s": fixed.cpu.__dict__,
                        "steady_ratio_to_tight": steady.__dict__, "target": target}
    return "\n".join(lines), figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = script_parser(__doc__)
    ap.add_argument("--volume", type=int, default=VOLUME_RECORDS,
                    help="input volume of every shape, as records of the default shape "
                    "(default: %(default)s, bench.run's stage rows')")
    ap.add_argument("--records", type=int, default=None,
                    help="records per run of every shape instead of a volume")
    ap.add_argument("--large-records", type=int, default=None,
                    help="with --records: records of the large shape (default: a fifth of "
                    "--records)")
    ap.add_argument("--quick", action="store_true",
                    help="a twentieth of the volume, one run: a smoke test, not a figure")
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated, of SHAPES")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--verify-output", action="store_true")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--timeout", type=float, default=1800.0, help="per run, seconds")
    args = ap.parse_args(argv)
    args.shape_list = [s.strip() for s in args.shapes.split(",") if s.strip()]
    if unknown := set(args.shape_list) - set(SHAPES):
        ap.error(f"unknown shapes {sorted(unknown)}; choose from {', '.join(SHAPES)}")
    if args.quick:
        args.volume, args.runs = args.volume // 20, 1
    if args.records is not None and args.large_records is None:
        args.large_records = max(1, args.records // 5)
    counts = [args.records, args.large_records] if args.records is not None else [args.volume]
    if min(*counts, args.runs) <= 0 or args.workers < 2:
        ap.error("--volume, --records and --runs must be positive, --workers at least 2")
    return args


def shape_records(args: argparse.Namespace, shape: str) -> int:
    """The records of ``shape`` a run reads: ``--records`` if given, else the volume's."""
    if args.records is not None:
        return args.large_records if shape == "large" else args.records
    return records_for_volume(shape, args.volume, args.seed)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir.resolve()
    tables, figures, ordered = [], {}, []
    for shape in args.shape_list:
        n = shape_records(args, shape)
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
    meta = {"volume_records": None if args.records is not None else args.volume,
            "records": args.records, "large_records": args.large_records, "runs": args.runs,
            "seed": args.seed, "workers": args.workers, "shapes": figures, "tables": tables}
    print(f"results: {write_results('shapes', ordered, meta, args.results_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
