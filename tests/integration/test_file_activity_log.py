"""A glob over many small files logs one INFO line about them (files opened and
finished, the first few named), not one per file; each file's line is DEBUG."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import (
    assert_stage_equals,
    base_config,
    file_source,
    make_records,
    ndjson,
    run_cli,
    stage_sink,
    write_config,
)

pytestmark = pytest.mark.timeout(120)
FILES = 300


def _write_files(directory: Path) -> list[dict]:
    directory.mkdir()
    records = make_records(FILES * 2)
    for i in range(FILES):
        (directory / f"f{i:04d}.ndjson").write_bytes(
            b"".join(line + b"\n" for line in ndjson(records[2 * i:2 * i + 2])))
    return records


@pytest.mark.parametrize("level", ["info", "debug"])
def test_one_info_line_for_a_glob_of_small_files(tmp_path: Path, level: str) -> None:
    records = _write_files(tmp_path / "in")
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(str(tmp_path / "in" / "*.ndjson"), follow=False)
                          + stage_sink(tmp_path))

    done = run_cli("run", "-c", str(config), "--log-level", level, timeout=90)

    assert done.code == 0, done.stderr[-3000:]
    assert_stage_equals(tmp_path / "stage", records)
    info = [line for line in done.stderr.splitlines() if " INFO streamer.source.file:" in line]
    first = [f"{tmp_path}/in/f{i:04d}.ndjson from offset 0" for i in range(3)]
    assert info == [f"{info[0].split(' INFO ')[0]} INFO streamer.source.file: source events: "
                    f"reading {', '.join(first)} and {FILES - 3} more ({FILES} files opened, "
                    f"{FILES} finished so far)"]
    per_file = re.findall(r"DEBUG streamer.source.file: reading (\S+) from offset 0",
                          done.stderr)
    assert sorted(per_file) == ([str(tmp_path / "in" / f"f{i:04d}.ndjson")
                                 for i in range(FILES)] if level == "debug" else [])
