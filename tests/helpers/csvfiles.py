"""Reading CSV the stage sink wrote (local stage directories) and comparing it with
the input records."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from tests.helpers.records import COLUMNS, expected_rows

BOM = "\ufeff"


def parse_csv(data: bytes, separator: str = ",", quote: str = '"') -> list[list[str]]:
    """Every row of UTF-8 CSV, the header included."""
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""),
                           delimiter=separator, quotechar=quote))


def stage_files(stage_dir: Path) -> list[tuple[Path, list[list[str]]]]:
    """Every completed stage file (every window, every part) in name order, parsed:
    (path, rows), the header first."""
    return [(path, parse_csv(path.read_bytes()))
            for path in sorted(stage_dir.glob("*/part-*.csv"))]


def read_stage_rows(stage_dir: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of every staged CSV file; every file has the same header, no BOM."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    for path, (file_header, *file_rows) in stage_files(stage_dir):
        assert not file_header[0].startswith(BOM), f"{path} has a BOM"
        assert header is None or file_header == header
        header = file_header
        rows.extend(file_rows)
    return header or [], rows


def count_stage_rows(stage: Path) -> int:
    """Rows in completed stage files (cheap: generated records hold no newlines)."""
    total = 0
    for path in stage.glob("*/part-*.csv"):
        total += path.read_bytes().count(b"\n") - 1
    return total


def stage_ids(stage: Path) -> Counter[int]:
    """How often each id of make_records is staged."""
    header, rows = read_stage_rows(stage)
    if not rows:
        return Counter()
    assert header == COLUMNS
    return Counter(int(r[0]) for r in rows)


def assert_same_rows(got: list, want: list) -> None:
    """List equality with a short failure message (pytest's diff of 100k rows is slow)."""
    if got == want:
        return
    first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                 min(len(got), len(want)))
    raise AssertionError(f"{len(got)} rows, {len(want)} expected; first difference at "
                         f"{first}: got {got[first:first + 1]}, want {want[first:first + 1]}")


def assert_same_multiset(got: Counter, want: Counter) -> None:
    """Multiset equality with a short failure message."""
    if got == want:
        return
    missing, extra = want - got, got - want
    raise AssertionError(f"{sum(missing.values())} missing (e.g. {list(missing)[:2]}), "
                         f"{sum(extra.values())} extra (e.g. {list(extra)[:2]})")


def assert_stage_equals(stage: Path, records: list[dict[str, Any]]) -> None:
    """Every record of make_records exactly once, every cell as the stage sink writes it."""
    header, rows = read_stage_rows(stage)
    assert header == COLUMNS
    assert len(rows) == len(records)
    assert_same_rows(sorted(rows, key=lambda r: int(r[0])),
                     expected_rows(sorted(records, key=lambda r: r["id"]), COLUMNS))


def assert_stage_covers(stage: Path, records: list[dict[str, Any]]) -> Counter[int]:
    """Every record at least once, duplicates identical; returns the id counts."""
    header, rows = read_stage_rows(stage)
    assert header == COLUMNS
    by_id = {r["id"]: r for r in records}
    unique = {tuple(row) for row in rows}
    assert sorted(unique, key=lambda r: int(r[0])) == [
        tuple(row) for row in expected_rows([by_id[i] for i in sorted(by_id)], COLUMNS)]
    return Counter(int(r[0]) for r in rows)
