"""bench.mapped_c_timestamps: its run over the product's C functions writes the same
bytes as the SQL (the functions themselves: tests/unit/mapping/test_c_functions.py)."""

from __future__ import annotations

from bench.mapped_c_timestamps import main


def test_a_small_run_writes_the_same_bytes_both_ways(capsys) -> None:
    assert main(["--batch", "300", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "sql and c outputs: the same bytes"
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["sql", "c", "none"]
