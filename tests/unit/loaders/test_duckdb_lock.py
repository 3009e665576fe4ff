"""Loads into one DuckDB database take turns across processes (`<database>.load-lock`):
a load whose fsync failed repairs the files after its connection closed, and another
worker's commit must not land in between (the repair would remove it)."""

import fcntl
import os
import subprocess
import sys
import textwrap

import duckdb

from streamer.loaders.duckdb import MARKER_TABLE, forget_unwritten
from streamer.loaders.duckdb_lock import lock_path

LOADING = textwrap.dedent("""
    import asyncio, logging, sys
    from pathlib import Path
    from streamer.core.deadletter import DeadLetters
    from streamer.loaders.config import DuckDBLoad
    from streamer.loaders.duckdb import DuckDBLoader
    from streamer.sinks.stage.config import CsvOptions
    from streamer.sinks.stage.journal import Window

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    database, staged = Path(sys.argv[1]), sys.argv[2]
    loader = DuckDBLoader(DuckDBLoad(type="duckdb", table="t"), ["id", "v"], CsvOptions(),
                          database, "st", DeadLetters(database.parent / "dl"))
    window = Window("w-other-worker", records=2)
    print(asyncio.run(loader.load(window, [staged], lambda **_: None)), flush=True)
""")


def test_a_load_waits_while_another_process_repairs_after_a_failed_fsync(tmp_path):
    database = tmp_path / "events.duckdb"
    staged = tmp_path / "part-00001.csv"
    staged.write_text('id,v\n1,"first, row"\n2,second\n')
    # this process is a worker whose load created the database and failed its fsync:
    # its connection is closed, its repair not done yet, its load lock held
    held = os.open(lock_path(database), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    other = subprocess.Popen([sys.executable, "-c", LOADING, str(database), str(staged)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = []
        while line := other.stderr.readline():  # until it waits, or it is done
            said.append(line)
            if "holds it; this one waits" in line:
                break
        # the repair of a database this worker's failed load created: it is removed
        forget_unwritten(database, duckdb.IOException(
            f'IO Error: Could not fsync file "{database}": Input/output error'), (False, None))
        fcntl.flock(held, fcntl.LOCK_UN)
        out, err = other.communicate(timeout=120)
    finally:
        os.close(held)
        if other.poll() is None:
            other.kill()
            other.wait()
    assert other.returncode == 0, "".join(said) + err
    assert out.strip() == "{'rows': 2, 'rows_rejected': 0}"
    con = duckdb.connect(str(database), read_only=True)
    try:
        assert sorted(con.execute("SELECT id, v FROM t").fetchall()) == [
            ("1", "first, row"), ("2", "second")]
        assert con.execute(f"SELECT window_id, rows FROM {MARKER_TABLE}").fetchall() == [
            ("w-other-worker", 2)]
    finally:
        con.close()
