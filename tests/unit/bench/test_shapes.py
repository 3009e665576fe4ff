"""bench.shapes measures every shape at one input volume (a ratio that includes
start-up depends on the input's size) and reports each row's fixed cost and its
steady rate beside the whole-run ratio."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.file_to_stage import ensure_input
from bench.gen import SHAPES
from bench.measure import Run
from bench.outcomes import Result
from bench.shapes import (
    FIXED_RECORDS,
    ROWS,
    VOLUME_RECORDS,
    parse_args,
    records_for_volume,
    shape_records,
    shape_table,
    steady_rates,
    steady_ratio,
)


def test_every_shape_reads_the_bytes_of_the_same_volume(tmp_path: Path) -> None:
    volume = 8000  # the large shape: 1,449 records, more than FIXED_RECORDS
    sizes = {shape: ensure_input(tmp_path, records_for_volume(shape, volume), 1, shape)[0]
             .stat().st_size for shape in SHAPES}
    assert records_for_volume("default", volume) == volume  # bench.run's very input
    for shape in SHAPES:
        assert sizes[shape] == pytest.approx(sizes["default"], rel=0.02), shape
    assert records_for_volume("large", volume) < volume < records_for_volume("small", volume)


def test_the_default_volume_is_the_stage_rows_and_quick_a_twentieth() -> None:
    args = parse_args([])
    assert [shape_records(args, shape) for shape in ("default",)] == [VOLUME_RECORDS]
    assert VOLUME_RECORDS == 1_000_000  # bench.run's --records default
    quick = parse_args(["--quick"])
    assert (shape_records(quick, "default"), quick.runs) == (VOLUME_RECORDS // 20, 1)
    counted = parse_args(["--records", "500000"])
    assert [shape_records(counted, s) for s in ("small", "default", "large")] == \
        [500_000, 500_000, 100_000]


def _result(name: str, records: int, walls: list[float], cpus: list[float]) -> Result:
    return Result(name, records, [Run(cmd=[], returncode=0, wall_s=w, peak_rss_bytes=0,
                                      hwm_bytes=0, cpu_s=c, samples=1, summary=None,
                                      stderr_tail="") for w, c in zip(walls, cpus, strict=True)])


def test_the_steady_rate_is_what_a_run_did_beyond_its_fixed_cost_run() -> None:
    n = 10_000
    walls = {"tight": [11.0, 12.0], "stage_1w": [6.0, 7.0], "stage": [5.0, 4.0],
             "duckdb": [2.0, 2.5]}
    fixed_walls = {"tight": [0.2, 0.2], "stage_1w": [0.8, 0.6], "stage": [1.4, 1.0],
                   "duckdb": [0.3, 0.3]}
    results = {}
    for key in ROWS:
        results[key] = _result(f"default: {key}", n, walls[key], [3.0, 3.0])
        results[f"{key}_fixed"] = _result(f"default: {key} (fixed cost)", FIXED_RECORDS,
                                          fixed_walls[key], [0.5, 0.7])
    assert steady_rates(results["stage"], results["stage_fixed"]) == \
        [pytest.approx(9000 / 3.6), pytest.approx(9000 / 3.0)]  # records/s beyond the fixed
    steady = steady_ratio(results, "stage")
    # (n - FIXED_RECORDS) / (wall - fixed wall), over the tight loop's, paired per run
    assert steady.min == pytest.approx(10.8 / 3.6)
    assert steady.max == pytest.approx(11.8 / 3.0)
    assert steady_ratio(results, "tight").median == pytest.approx(1.0)

    table, figures = shape_table("default", 3_650_000, results)
    stage_line = next(line for line in table.splitlines() if line.startswith("| stage "))
    assert "| 1.20, 0.60 |" in stage_line  # the fixed-cost run's median wall and CPU
    assert f"| {steady.median:.2f} ({steady.min:.2f}-{steady.max:.2f}) |" in stage_line
    # the whole-run ratio stays the one the target is judged on: 11/5 and 12/4
    assert "| 2.60 (2.20-3.00) |" in stage_line and ">= 2.5x: met" in stage_line
    assert figures["stage"]["fixed_wall_s"]["median"] == pytest.approx(1.2)
    assert figures["records"] == n and figures["fixed_records"] == FIXED_RECORDS
