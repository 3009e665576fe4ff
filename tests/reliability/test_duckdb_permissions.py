"""A DuckDB load.path streamer may not write (a read-only directory, a read-only
database file, a database whose directory cannot take its .wal): no retry gets
past that, so the window fails at once, loudly, and a one-shot run exits 1 naming
the database; the staged files are kept, and once the permission is fixed
`loads retry` and a run load them.  Before 2026-12-05 the first two were
retried for ever ("IO Error: Cannot open file ...: Permission denied").

The suites run as root, whom file modes do not stop: the runs are started with
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped (`setpriv`), as an unprivileged
service user would run them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import duckdb
import pytest

from tests.fixtures.processes import REPO
from tests.helpers import Finished, journal, write_ndjson
from tests.helpers.csvfiles import read_stage_rows
from tests.helpers.process import streamer_cmd
from tests.reliability.test_failed_loads import SINK, as_row, config, make_records, table_rows

pytestmark = pytest.mark.timeout(120)

DROP_DAC = "-dac_override,-dac_read_search"


def run_unprivileged(*args: str, timeout: float = 40) -> Finished:
    prefix = (["setpriv", f"--bounding-set={DROP_DAC}", f"--inh-caps={DROP_DAC}"]
              if os.geteuid() == 0 else [])
    proc = subprocess.run([*prefix, *streamer_cmd(*args)], cwd=REPO, capture_output=True,
                          timeout=timeout)
    return Finished(proc.returncode, proc.stdout.decode(errors="replace"),
                    proc.stderr.decode(errors="replace"))


@pytest.mark.parametrize("kind", ["directory", "file", "wal"])
def test_a_database_streamer_may_not_write_fails_the_window_and_keeps_the_files(
        tmp_path: Path, kind: str) -> None:
    records = make_records(50)
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    place = tmp_path / "db"
    place.mkdir()
    db = place / "events.duckdb"
    if kind != "directory":
        duckdb.connect(str(db)).close()  # an empty database
    locked = db if kind == "file" else place
    locked.chmod(0o444 if kind == "file" else 0o555)
    cfg = config(tmp_path, source, db_path=db)
    try:
        checked = run_unprivileged("check", "-c", str(cfg), "--connect")
        assert checked.code == 1, checked.stdout + checked.stderr
        assert f"FAILED: {place if kind != 'file' else db}" in checked.stdout, checked.stdout

        done = run_unprivileged("run", "-c", str(cfg))

        assert done.code == 1, done.stderr[-3000:]
        [(window, error)] = done.summary["sinks"][SINK]["failed_windows"].items()
        assert "Permission denied" in error, error
        assert str(db) in done.stderr, done.stderr[-3000:]
        assert journal(tmp_path / "data", SINK)[window]["state"] == "failed"
        # the staged rows are kept for a later load
        header, rows = read_stage_rows(tmp_path / SINK)
        assert sorted(rows, key=lambda row: int(row[0])) == [
            [str(r[c]) for c in header] for r in records]
    finally:
        locked.chmod(0o644 if kind == "file" else 0o755)

    retried = run_unprivileged("loads", "retry", "-c", str(cfg))
    assert retried.code == 0, retried.stdout + retried.stderr
    again = run_unprivileged("run", "-c", str(cfg))
    assert again.code == 0, again.stderr[-3000:]
    assert table_rows(db) == sorted(map(as_row, records))
