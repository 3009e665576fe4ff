"""Every bench row's output is checked against its input: a run whose summary says it
delivered every record but whose output lost one and duplicated another, or changed a
cell, stops the bench (BenchError) instead of being reported as a speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.baselines import duckdb_copy, tight_loop
from bench.file_to_stage import baseline_scenario, stage_scenario
from bench.gen import FIELDS, generate
from bench.harness import BenchError, Run
from bench.output_check import data_files, digest, expect_output, reference_digest

N = 300


@pytest.fixture()
def input_path(tmp_path: Path) -> Path:
    path = tmp_path / "input.ndjson"
    generate(path, N, seed=3)
    return path


def summary_run(summary: dict) -> Run:
    return Run(cmd=["x"], returncode=0, wall_s=1.0, peak_rss_bytes=0, hwm_bytes=0, cpu_s=1.0,
               samples=1, summary=summary, stderr_tail="")


def crlf_rows(csv_path: Path) -> list[bytes]:
    """The CSV's rows (the bench's messages hold no line break)."""
    return csv_path.read_bytes().split(b"\r\n")[:-1]


def write_stage_file(stage: Path, rows: list[bytes]) -> Path:
    path = stage / "20261204T000000Z-0" / "part-00001.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(row + b"\r\n" for row in rows))
    return path


def stage_validate(tmp_path: Path, input_path: Path, rows: list[bytes]) -> None:
    scenario = stage_scenario(tmp_path / "work", input_path, N)
    scenario.prepare(0)
    run_dir = tmp_path / "work" / "stage-0"
    write_stage_file(run_dir / "stage", rows)
    delivered = {"sinks": {"stage": {"delivered": N}}}
    scenario.validate(summary_run(delivered), 0)


def test_the_stage_is_the_tight_loops_csv_in_any_order_and_files(tmp_path: Path,
                                                                 input_path: Path) -> None:
    tight_loop(input_path, tmp_path / "tight.csv")
    header, *rows = crlf_rows(tmp_path / "tight.csv")
    stage = tmp_path / "stage"
    for index, part in enumerate((rows[::2], rows[1::2][::-1])):
        path = stage / f"w{index}" / "part-00001.csv"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"".join(row + b"\r\n" for row in [header, *part]))
    expect_output(input_path, FIELDS)("stage", data_files(stage))
    duckdb_copy(input_path, tmp_path / "duckdb.csv")
    assert digest([tmp_path / "duckdb.csv"], FIELDS) == reference_digest(input_path, FIELDS)


def test_a_stage_run_whose_output_lost_and_duplicated_a_record_fails(
        tmp_path: Path, input_path: Path) -> None:
    tight_loop(input_path, tmp_path / "tight.csv")
    header, *rows = crlf_rows(tmp_path / "tight.csv")
    stage_validate(tmp_path, input_path, [header, *rows])  # the whole input: passes
    one_lost_one_twice = [header, rows[1], *rows[1:]]
    with pytest.raises(BenchError, match="not the input's"):
        stage_validate(tmp_path, input_path, one_lost_one_twice)
    with pytest.raises(BenchError, match=f"{N - 1:,} rows in its output, expected {N:,}"):
        stage_validate(tmp_path, input_path, [header, *rows[:-1]])


def test_a_stage_run_with_a_changed_cell_fails(tmp_path: Path, input_path: Path) -> None:
    tight_loop(input_path, tmp_path / "tight.csv")
    header, first, *rest = crlf_rows(tmp_path / "tight.csv")
    changed = first.replace(b",", b",x", 1)
    with pytest.raises(BenchError, match="cells changed"):
        stage_validate(tmp_path, input_path, [header, changed, *rest])


def test_a_baseline_that_says_every_record_but_wrote_fewer_fails(tmp_path: Path,
                                                                 input_path: Path) -> None:
    scenario = baseline_scenario("tight", tmp_path, input_path, N)
    out = Path(scenario.command(0)[5])
    tight_loop(input_path, out)
    scenario.validate(summary_run({"records": N}), 0)
    out.write_bytes(b"".join(row + b"\r\n" for row in crlf_rows(out)[:-2]))
    with pytest.raises(BenchError, match="records lost or duplicated"):
        scenario.validate(summary_run({"records": N}), 0)
