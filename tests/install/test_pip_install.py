"""`pip install .` (not editable, no extras) into a fresh virtualenv gives a working
`streamer`: the installed command, run away from the source tree, prints its version
and loads a small file into DuckDB through a local stage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.fixtures.processes import REPO

CONFIG = """
data_dir = "{tmp}/data"

[sources.input]
type = "file"
paths = ["{tmp}/input.ndjson"]
follow = false

[sinks.stage]
type = "stage"
url = "file://{tmp}/stage/"
columns = ["time", "host", "status"]

[sinks.stage.load]
type = "duckdb"
table = "events"

[sinks.stage.load.column_types]
time = "BIGINT"
status = "BIGINT"
"""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_pip_install_gives_a_working_streamer(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: a build writes build/ and *.egg-info beside it
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "streamer", source / "streamer",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", str(source)],
        capture_output=True, text=True, timeout=900, env=_clean_env())
    assert pip.returncode == 0, pip.stderr[-3000:]
    streamer = venv / "bin" / "streamer"
    work = tmp_path / "work"  # neither the source tree nor its copy
    work.mkdir()

    version = subprocess.run([str(streamer), "--version"], capture_output=True, text=True,
                             cwd=work, env=_clean_env(), timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "streamer 0.1.0"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import streamer; print(streamer.__file__)"],
        capture_output=True, text=True, cwd=work, env=_clean_env(), timeout=60)
    assert where.stdout.startswith(str(venv)), where.stdout  # the installed copy runs

    records = [{"time": 1700000000 + i, "host": f"h{i % 3}", "status": 200 + i}
               for i in range(50)]
    (work / "input.ndjson").write_text("".join(json.dumps(r) + "\n" for r in records))
    (work / "streamer.toml").write_text(CONFIG.format(tmp=work))
    run = subprocess.run([str(streamer), "run", "-c", "streamer.toml", "--no-progress"],
                         capture_output=True, text=True, cwd=work, env=_clean_env(),
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import duckdb, json; c = duckdb.connect('data/streamer.duckdb', read_only=True); "
         "print(json.dumps(c.execute('SELECT time, host, status FROM events "
         "ORDER BY time').fetchall()))"],
        capture_output=True, text=True, cwd=work, env=_clean_env(), timeout=60)
    assert rows.returncode == 0, rows.stderr
    assert json.loads(rows.stdout) == [[r["time"], r["host"], r["status"]] for r in records]
