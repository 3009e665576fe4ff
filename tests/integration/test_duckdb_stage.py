"""A local stage loaded into DuckDB, as an operator sees it: staged files are
deleted once their window is loaded (`delete_staged`, the default), never before --
a crash in between neither loses nor loads anything twice -- and the database can
be read by another process while streamer runs (it is open only during a load)."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import duckdb
import orjson
import pytest

from bench.gen import iter_records
from tests.helpers import (
    REPO,
    Daemon,
    base_config,
    file_source,
    journal,
    make_records,
    run_cli,
    stage_sink,
    stop,
    toml_keys,
    wait_until,
    write_config,
    write_ndjson,
)

pytestmark = pytest.mark.timeout(120)

COLUMNS = ["id", "host", "status", "message"]
TYPES = {"id": "BIGINT", "status": "BIGINT"}


def config(tmp: Path, *, follow: bool, delete_staged: bool | None = None,
           sink: str = "max_file_records = 2000\nwindow_files = 1\n") -> Path:
    return write_config(tmp, base_config(tmp, checkpoint_interval_s=0.1)
                        + file_source(tmp / "in.ndjson", name="input", follow=follow)
                        + stage_sink(tmp, columns=COLUMNS, max_file_age_s=0.2, extra=sink)
                        + "[sinks.stage.load]\n"
                        + toml_keys(type="duckdb", table="events", column_types=TYPES,
                                    delete_staged=delete_staged))


def rows(db: Path, query: str = "SELECT id, host, status, message FROM events") -> list:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def as_rows(records) -> Counter:
    return Counter((r["id"], r["host"], r["status"], r["message"]) for r in records)


def staged_csv(stage: Path) -> list[Path]:
    return sorted(stage.rglob("*.csv"))


def test_the_demo_leaves_no_csv_behind_and_loads_every_row(tmp_path: Path):
    records = list(iter_records(30_000, 11))
    write_ndjson(tmp_path / "input.ndjson", records)
    demo = (REPO / "config" / "demo.toml").read_text()
    demo = demo.replace('listen = "127.0.0.1:9108"', 'listen = ""')  # tests run side by side
    demo = demo.replace("max_file_records = 250000", "max_file_records = 4000")  # 4 windows
    (tmp_path / "demo.toml").write_text(demo)
    done = run_cli("run", "-c", str(tmp_path / "demo.toml"),
                   env={"DEMO_DIR": str(tmp_path), "DEMO_INPUT": str(tmp_path / "input.ndjson")})
    assert done.code == 0, done.stderr[-3000:]
    assert done.summary["sinks"]["stage"]["windows_loaded"] == 4
    assert staged_csv(tmp_path / "stage") == []
    assert sorted(p.name for p in (tmp_path / "stage").iterdir()) == ["_tmp"]
    columns = ["time", "host", "status", "latency_ms", "user_id", "message", "optional"]
    loaded = rows(tmp_path / "data" / "streamer.duckdb",
                  f"SELECT {', '.join(columns)} FROM events")
    assert Counter(loaded) == Counter(tuple(r.get(c) for c in columns) for r in records)


def test_delete_staged_false_keeps_the_files(tmp_path: Path):
    records = make_records(5000)
    write_ndjson(tmp_path / "in.ndjson", records)
    done = run_cli("run", "-c", str(config(tmp_path, follow=False, delete_staged=False)))
    assert done.code == 0, done.stderr[-3000:]
    assert len(staged_csv(tmp_path / "stage")) == 3
    assert Counter(rows(tmp_path / "data" / "streamer.duckdb")) == as_rows(records)


def test_a_crash_around_the_commit_loses_nothing_and_loads_nothing_twice(tmp_path: Path):
    """Three windows as a crash leaves them: committed but not journaled `loaded`
    (files there), the same with the files already gone, and journaled `loaded` with
    its files still staged.  The next start deletes every file and loads no row twice."""
    records = make_records(6000)
    write_ndjson(tmp_path / "in.ndjson", records)
    first = run_cli("run", "-c", str(config(tmp_path, follow=False, delete_staged=False)))
    assert first.code == 0, first.stderr[-3000:]
    data, stage = tmp_path / "data", tmp_path / "stage"
    windows = sorted(journal(data, "stage"))
    assert len(windows) == 3 and len(staged_csv(stage)) == 3
    with open(data / "journal" / "stage.ndjson", "ab") as fh:
        for window in windows[:2]:
            fh.write(orjson.dumps({"window": window, "state": "loading"}) + b"\n")
    for staged in (stage / windows[1]).iterdir():
        staged.unlink()

    again = run_cli("run", "-c", str(config(tmp_path, follow=False)))

    assert again.code == 0, again.stderr[-3000:]
    assert "failed" not in again.stderr
    sink = again.summary["sinks"]["stage"]
    assert sink["windows_loaded"] == 2 and "windows_failed" not in sink
    assert [w["state"] for w in journal(data, "stage").values()] == ["loaded"] * 3
    assert staged_csv(stage) == []
    assert Counter(rows(data / "streamer.duckdb")) == as_rows(records)
    assert rows(data / "streamer.duckdb", "SELECT count(*), sum(rows) FROM _streamer_loads") \
        == [(3, 6000)]


def test_kill_9_while_loading_then_restart(tmp_path: Path):
    """kill -9 at random moments of a daemon loading a window every 0.2 s: after a
    clean finish every record is in DuckDB, every window's rows once, no CSV left."""
    rng = random.Random(5)
    records = make_records(40_000)
    write_ndjson(tmp_path / "in.ndjson", records)
    daemon_config = config(tmp_path, follow=True)
    data = tmp_path / "data"
    for attempt in range(3):
        daemon = Daemon(daemon_config, tmp_path / f"run{attempt}.log")
        wait_until(lambda d=daemon: "loaded window" in d.log, what="a load")
        time.sleep(rng.uniform(0.0, 0.5))
        daemon.kill()
    done = run_cli("run", "-c", str(config(tmp_path, follow=False)))
    assert done.code == 0, done.stderr[-3000:]
    loaded = Counter(rows(data / "streamer.duckdb"))
    assert not as_rows(records) - loaded, "records lost"
    # what is loaded twice is what was read again after a kill (at-least-once), each
    # window once: the markers count every row of the table
    markers = rows(data / "streamer.duckdb", "SELECT sum(rows) FROM _streamer_loads")
    assert markers == [(sum(loaded.values()),)]
    windows = journal(data, "stage").values()  # "staged": a window that got no file
    assert all(w["state"] == "loaded" or (w["state"], w["files"]) == ("staged", [])
               for w in windows), windows
    assert staged_csv(tmp_path / "stage") == []


READER = """
import duckdb, orjson, sys, time
path, seconds, hold_at = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
seen, locked, started = [], 0, time.monotonic()
# reads until it has read 10 times, seen 3 counts and held the database once (within
# `seconds`, a bound on a loaded host: the test checks what it saw)
while (len(seen) < 10 or len(set(seen)) < 3 or hold_at) \
        and time.monotonic() - started < seconds:
    try:
        con = duckdb.connect(path, read_only=True)
    except duckdb.Error as exc:
        locked += "lock" in str(exc)
        time.sleep(0.02)
        continue
    seen.append(con.execute("SELECT count(*) FROM events").fetchone()[0])
    if hold_at and time.monotonic() - started > hold_at:
        time.sleep(1.5)  # a long query: the next load waits for it
        hold_at = 0
    con.close()
    time.sleep(0.05)
print(orjson.dumps({"seen": seen, "locked": locked}).decode())
"""


def _count_unless_locked(db: Path) -> int | None:
    """The table's rows, None while a load holds the database (its writer's lock)."""
    try:
        return rows(db, "SELECT count(*) FROM events")[0][0]
    except duckdb.IOException as exc:
        if "lock" not in str(exc):
            raise
        return None


def test_a_reader_queries_the_database_between_loads(tmp_path: Path):
    """Another process opens the database (read_only) again and again while a daemon
    follows a growing file and loads a window about every half second; one of its
    queries holds the database 1.5 s, and the load that comes meanwhile waits for it."""
    first = make_records(2000)
    write_ndjson(tmp_path / "in.ndjson", first)
    daemon = Daemon(config(tmp_path, follow=True, sink="window_age_s = 0.5\n"),
                    tmp_path / "run.log")
    db = tmp_path / "data" / "streamer.duckdb"
    more = make_records(8000, start=2000)
    try:
        wait_until(lambda: "loaded window" in daemon.log, what="the first load")
        reader = subprocess.Popen([sys.executable, "-c", READER, str(db), "120", "0.5"],
                                  stdout=subprocess.PIPE, text=True)

        def append() -> None:
            for start in range(0, len(more), 400):
                write_ndjson(tmp_path / "in.ndjson", more[start:start + 400], mode="ab")
                time.sleep(0.15)

        writer = threading.Thread(target=append)
        writer.start()
        out, _ = reader.communicate(timeout=180)
        writer.join()
        assert reader.returncode == 0
        report = orjson.loads(out)
        seen = report["seen"]
        # it read many times, and saw windows loaded between its reads
        assert len(seen) >= 10 and len(set(seen)) >= 3, (report, daemon.log[-3000:])
        assert seen == sorted(seen) and seen[0] >= 2000, report
        wait_until(lambda: _count_unless_locked(db) == 10_000, timeout=60,
                   what="every row loaded")
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert "windows_failed" not in summary["sinks"]["stage"]
    assert Counter(rows(db)) == as_rows(first + more)
    assert staged_csv(tmp_path / "stage") == []


def test_stage_sinks_sharing_the_default_database_load_every_window(tmp_path: Path):
    """Fan-out to three stage sinks (CSV, NDJSON, Parquet) loading into tables of the
    one default database: their loads take turns.  Before 2026-12-05 the sinks' first
    loads into the new database ran at once, DuckDB refused all but one (`Catalog
    write-write conflict on alter with "_streamer_loads"`), those windows failed and
    the one-shot run exited 1 with their rows not loaded."""
    records = make_records(20_000)
    write_ndjson(tmp_path / "in.ndjson", records)
    sinks = ""
    for fmt in ("csv", "ndjson", "parquet"):  # every window closes at the end, at once
        sinks += (stage_sink(tmp_path, name=fmt, columns=COLUMNS, max_file_age_s=None,
                             extra=toml_keys(format=fmt))
                  + f"[sinks.{fmt}.load]\n"
                  + toml_keys(type="duckdb", table=f"events_{fmt}", column_types=TYPES))
    cfg = write_config(tmp_path, base_config(tmp_path) + file_source(
        tmp_path / "in.ndjson", name="input", follow=False) + sinks)

    done = run_cli("run", "-c", str(cfg))

    assert done.code == 0, done.stderr[-3000:]
    for fmt in ("csv", "ndjson", "parquet"):
        assert done.summary["sinks"][fmt]["windows_loaded"] == 1, fmt
        assert Counter(rows(tmp_path / "data" / "streamer.duckdb",
                            f"SELECT id, host, status, message FROM events_{fmt}")
                       ) == as_rows(records), fmt
