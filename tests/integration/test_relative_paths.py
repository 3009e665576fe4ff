"""Relative paths (data_dir, file paths, the DuckDB file) are taken from the working
directory, as documented, and never silently: `check` shows data_dir's absolute
path and a WARNING per relative path, `run` logs the same at start."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import duckdb
import pytest

from tests.helpers import make_records, ndjson, summary_of
from tests.helpers.process import REPO, streamer_cmd

pytestmark = pytest.mark.timeout(120)

CONFIG = """
data_dir = "state"
[sources.f]
type = "file"
paths = ["in/*.ndjson"]
follow = false
[sinks.st]
type = "stage"
url = "file://{stage}/"
columns = ["id", "host"]
max_file_age_s = 0.2
[sinks.st.load]
type = "duckdb"
path = "db/events.duckdb"
table = "events"
"""


def streamer(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(streamer_cmd(*args), cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=100)


def test_relative_paths_are_said_with_the_absolute_path_they_mean(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "in").mkdir(parents=True)
    (work / "db").mkdir()
    records = make_records(50)
    (work / "in" / "a.ndjson").write_bytes(b"".join(line + b"\n" for line in ndjson(records)))
    config = tmp_path / "streamer.toml"
    config.write_text(CONFIG.format(stage=tmp_path / "stage"))

    check = streamer(work, "check", "-c", str(config))
    assert check.returncode == 0, check.stderr
    assert f"data_dir: {work}/state (relative: state, from the working directory)" \
        in check.stdout, check.stdout
    for key, value, absolute in [("data_dir", "state", work / "state"),
                                 ("sources.f.paths", "in/*.ndjson", work / "in/*.ndjson"),
                                 ("sinks.st.load.path", "db/events.duckdb",
                                  work / "db/events.duckdb")]:
        line = f'{key} "{value}" is relative to the working directory {work}: {absolute}'
        assert line in check.stderr, check.stderr

    run = streamer(work, "run", "-c", str(config), "--no-progress")
    assert run.returncode == 0, run.stderr[-3000:]
    assert f'data_dir "state" is relative to the working directory {work}: {work}/state' \
        in run.stderr, run.stderr[-3000:]
    assert summary_of(run.stderr)["sources"]["f"]["records"] == len(records)
    assert (work / "state" / "checkpoints").is_dir()
    with duckdb.connect(str(work / "db" / "events.duckdb"), read_only=True) as db:
        rows = db.execute("select id::int, host from events order by id::int").fetchall()
    assert rows == [(r["id"], r["host"]) for r in records]

    absolute = tmp_path / "absolute.toml"
    absolute.write_text(CONFIG.format(stage=tmp_path / "stage2")
                        .replace('"state"', f'"{tmp_path}/state2"')
                        .replace('"in/*.ndjson"', f'"{work}/in/*.ndjson"')
                        .replace('"db/events.duckdb"', f'"{tmp_path}/other.duckdb"'))
    quiet = streamer(work, "check", "-c", str(absolute))
    assert quiet.returncode == 0, quiet.stderr
    assert "is relative" not in quiet.stderr and "(relative:" not in quiet.stdout
