"""bench.mapped_parts: each step types only its columns, and a small run prints a row
per encoder."""

from __future__ import annotations

from bench.file_to_stage_mapped import mapping
from bench.mapped_parts import STEPS, _typed_only, main


def test_each_step_types_only_its_kinds_and_keeps_the_paths() -> None:
    full = mapping()
    for _, kinds in STEPS:
        columns = _typed_only(kinds)
        assert [c["name"] for c in columns] == [c["name"] for c in full]
        assert [c["from"] for c in columns] == [c["from"] for c in full]
        for column, original in zip(columns, full, strict=True):
            assert column == (original if original["type"] in kinds else
                              {"name": original["name"], "from": original["from"],
                               "type": "string"})
    assert _typed_only(STEPS[-1][1]) == full  # the last step is the whole mapping


def test_a_small_run_prints_every_encoder(capsys) -> None:
    assert main(["--batch", "200", "--runs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "200-record batch, fastest of 1 runs (CPU)"
    names = [line[:14].strip() for line in lines[2:]]
    assert names == ["plain", *(name for name, _ in STEPS), "mapped", "mapped, SQL"]
    for line in lines[2:]:
        # a query's rows take some CPU; the C's call on one record may round to 0.00
        batch_ms, fixed_ms = map(float, line[14:].split()[:2])
        assert batch_ms >= 0 and fixed_ms >= 0
        assert line.endswith("x")
