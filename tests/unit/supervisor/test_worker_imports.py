"""Before it forks its workers the supervisor imports what they would import
after the fork (the configured sources' and sinks' modules, DuckDB, the event
loop) and freezes the objects made so far, without starting a thread: a thread's
locks would be copied held into every worker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from tests.helpers import REPO

# a fresh interpreter: the imports and gc.freeze() must not touch the test process
CHILD = """
import gc, json, sys, threading
from streamer.config.root import load_config
from streamer.supervisor.fork import can_fork_workers, import_worker_modules

cfg = load_config(sys.argv[1])
before = set(sys.modules)
import_worker_modules(cfg)
print(json.dumps({"new": sorted(set(sys.modules) - before), "frozen": gc.get_freeze_count(),
                  "threads": threading.active_count(), "can_fork": can_fork_workers()}))
"""


def _imported(tmp_path: Path, sinks: str) -> dict:
    config = tmp_path / "streamer.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nworkers = 2\n'
        f'[sources.logs]\ntype = "file"\npaths = ["{tmp_path / "*.ndjson"}"]\n' + sinks,
        encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", CHILD, str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_a_stage_pipelines_modules_and_duckdb_are_imported_before_the_fork(tmp_path):
    imported = _imported(tmp_path, (
        f'[sinks.stage]\ntype = "stage"\nurl = "{(tmp_path / "stage").as_uri()}/"\n'
        'columns = ["a", "b"]\n[sinks.stage.load]\ntype = "none"\n'))
    new = set(imported["new"])
    assert {"streamer.app", "streamer.sources.file.source", "streamer.sinks.stage.sink",
            "_duckdb", "uvloop"} <= new
    assert "duckdb" not in new  # its Python package: a CSV stage needs the extension only
    assert "streamer.sinks.td.sink" not in new  # only what the config uses
    assert "aiokafka" not in new
    assert imported["frozen"] > 10_000  # the modules' objects, kept out of collections
    assert imported["threads"] == 1
    assert imported["can_fork"] is True


def test_a_td_pipeline_imports_its_sink_and_not_duckdb(tmp_path):
    imported = _imported(tmp_path, (
        '[sinks.td]\ntype = "td"\napi = "ingest"\nendpoint = "http://127.0.0.1:9"\n'
        'database = "logs_db"\ntable = "events"\nwrite_key = "1/abc"\n'))
    new = set(imported["new"])
    assert "streamer.sinks.td.sink" in new
    assert "_duckdb" not in new and "duckdb" not in new
    assert "streamer.sinks.stage.sink" not in new
    assert imported["threads"] == 1
    assert imported["can_fork"] is True


def test_no_worker_is_forked_when_an_import_left_a_thread_running(tmp_path, monkeypatch):
    from streamer.config.root import load_config
    from streamer.supervisor import fork

    config = tmp_path / "streamer.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nworkers = 2\n[sources.logs]\ntype = "file"\n'
        f'paths = ["{tmp_path / "*.ndjson"}"]\n[sinks.stage]\ntype = "stage"\n'
        f'url = "{(tmp_path / "stage").as_uri()}/"\ncolumns = ["a", "b"]\n'
        '[sinks.stage.load]\ntype = "none"\n', encoding="utf-8")
    release = threading.Event()
    monkeypatch.setattr(fork, "import_worker_modules", lambda cfg: threading.Thread(
        target=release.wait, daemon=True).start())
    started: list[object] = []
    try:
        forked = fork.fork_workers(load_config(str(config)), started.append)
    finally:
        release.set()
    assert forked == {} and started == []  # the supervisor starts fresh interpreters
