"""A glob over many small files logs two INFO lines about them (the first file at
once, then files opened and finished, the next few named), not one per file; each
file's line is DEBUG."""

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
def test_two_info_lines_for_a_glob_of_small_files(tmp_path: Path, level: str) -> None:
    records = _write_files(tmp_path / "in")
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(str(tmp_path / "in" / "*.ndjson"), follow=False)
                          + stage_sink(tmp_path))

    done = run_cli("run", "-c", str(config), "--log-level", level, timeout=90)

    assert done.code == 0, done.stderr[-3000:]
    assert_stage_equals(tmp_path / "stage", records)
    info = [line for line in done.stderr.splitlines() if " INFO streamer.source.file:" in line]
    named = [f"{tmp_path}/in/f{i:04d}.ndjson from offset 0" for i in range(4)]
    prefix = [line.split(" INFO ")[0] + " INFO streamer.source.file: source events: "
              for line in info]
    # the first file at once, then one line for the rest
    assert info == [f"{prefix[0]}reading {named[0]} (1 file opened, 0 finished so far)",
                    f"{prefix[-1]}reading {', '.join(named[1:])} and {FILES - 4} more "
                    f"({FILES} files opened, {FILES} finished so far)"]
    per_file = re.findall(r"DEBUG streamer.source.file: reading (\S+) from offset 0",
                          done.stderr)
    assert sorted(per_file) == ([str(tmp_path / "in" / f"f{i:04d}.ndjson")
                                 for i in range(FILES)] if level == "debug" else [])
