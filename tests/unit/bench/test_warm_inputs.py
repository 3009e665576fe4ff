"""Every file a bench row's streamer reads is warmed before each of its runs, as its
baseline's is: a row whose input is left to the page cache reads it from disk after
the VM's page-out (about a minute untouched) and is compared unfairly."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bench.file_to_stage import prepare_input, stage_scenario
from bench.file_to_stage_mapped import main as mapped_main
from bench.file_to_stage_mapped import mapped_scenario
from bench.scenario import Scenario

RECORDS = 40


def _read_paths(scenario: Scenario, run_dir: Path) -> set[Path]:
    """The input files the scenario's first run reads (its config's file source)."""
    assert scenario.prepare is not None
    scenario.prepare(0)
    config = tomllib.loads((run_dir / "streamer.toml").read_text(encoding="utf-8"))
    return {Path(p) for p in config["sources"]["input"]["paths"]}


def _warmed(scenario: Scenario) -> set[Path]:
    return {file for path in scenario.inputs
            for file in (sorted(path.parent.glob(path.name)) if "*" in path.name else [path])}


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    return prepare_input(tmp_path, RECORDS, 1)


def test_the_mapped_row_warms_its_nested_input_as_the_plain_row_does(
        tmp_path: Path, flat: Path) -> None:
    plain = stage_scenario(tmp_path, flat, RECORDS)
    mapped = mapped_scenario(tmp_path, flat, RECORDS, 1)
    plain_reads = _read_paths(plain, tmp_path / "stage-0")
    mapped_reads = _read_paths(mapped, tmp_path / "mapped-0")
    assert plain_reads and plain_reads <= _warmed(plain)
    assert mapped_reads == {flat.with_name(flat.stem + "-nested.ndjson")}
    assert mapped_reads <= _warmed(mapped)


def test_the_mapped_script_warms_both_inputs(tmp_path: Path, flat: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Scenario] = []

    def compare(scenarios, *_args, **_kwargs):
        seen.extend(scenarios)
        raise SystemExit(0)

    monkeypatch.setattr("bench.file_to_stage_mapped.compare", compare)
    with pytest.raises(SystemExit):
        mapped_main(["--records", str(RECORDS), "--runs", "1", "--workdir", str(tmp_path)])
    plain, mapped = seen
    assert _read_paths(plain, tmp_path / "plain-0") <= _warmed(plain)
    assert _read_paths(mapped, tmp_path / "mapped-0") <= _warmed(mapped)
