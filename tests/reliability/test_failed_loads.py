"""Loads that fail (issue #17, item 2), from the outside: cells DuckDB cannot convert
are dead-lettered and the rest loads; a full disk is retried until space is freed; a
window whose staged file is gone fails visibly without blocking later windows, and
`streamer loads retry` loads it once the file is back; a failed Timestream task and a
Data Exchange job in ERROR are failed windows the same way."""

from __future__ import annotations

import shutil
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from bench.gen import iter_records
from tests.fixtures.batchload import BatchLoadEmulator
from tests.fixtures.moto_s3 import MotoServer
from tests.helpers import (
    Daemon,
    base_config,
    checkpoint_offset,
    file_source,
    free_port,
    health,
    journal,
    read_dead_letters,
    run_cli,
    scrape,
    stage_sink,
    staged_keys,
    summary_of,
    toml_keys,
    wait_until,
    write_config,
    write_ndjson,
)
from tests.helpers import dataexchange as dx
from tests.helpers.filesystems import fill, small_filesystem
from tests.helpers.s3 import read_object
from tests.integration import test_timestream_load as ts

pytestmark = pytest.mark.timeout(120)

COLUMNS = ["id", "ts", "status", "name"]
TYPES = {"id": "BIGINT", "ts": "TIMESTAMP", "status": "BIGINT"}
SINK = "stage"


def make_records(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": i, "ts": f"2024-05-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:07",
             "status": 200 + i % 7, "name": f"user-{i}-" + "x" * (i % 40)}
            for i in range(start, start + n)]


def as_row(record: dict[str, Any]) -> tuple:
    return (record["id"], datetime.fromisoformat(record["ts"]), record["status"],
            record["name"])


def config(tmp: Path, source: Path, *, follow: bool = False, api: str = "",
           db_path: Path | None = None, sink: str = "max_file_records = 4000\n"
                                                   "window_files = 1\n") -> Path:
    load = ("[sinks.stage.load]\n"
            + toml_keys(type="duckdb", table="events", path=db_path, column_types=TYPES,
                        delete_staged=False))  # dead letters are compared with staged files
    return write_config(tmp, base_config(tmp, api=api)
                        + file_source(source, name="input", follow=follow)
                        + stage_sink(tmp, columns=COLUMNS, max_file_age_s=None, extra=sink)
                        + load)


def table_rows(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(con.execute("SELECT id, ts, status, name FROM events").fetchall())
    finally:
        con.close()


# -- cells DuckDB cannot convert ---------------------------------------------------------
def test_bad_cells_are_dead_lettered_and_every_other_row_loads(tmp_path: Path) -> None:
    records = make_records(20_000)
    bad = {2346: ("status", "n/a"), 7: ("ts", "not a time"), 9_999: ("status", "12abc"),
           15_001: ("ts", "2024-13-45 00:00:00")}
    for index, (column, value) in bad.items():
        records[index] = dict(records[index], **{column: value})
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)

    done = run_cli("run", "-c", str(config(tmp_path, source)))

    assert done.code == 0, done.stderr[-3000:]  # rows dead-lettered are not a failed window
    good = [r for i, r in enumerate(records) if i not in bad]
    assert table_rows(tmp_path / "data" / "streamer.duckdb") == sorted(map(as_row, good))
    letters = read_dead_letters(tmp_path / "data", SINK)
    assert len(letters) == len(bad)
    by_id = {int(letter["raw"].split(",")[0]): letter for letter in letters}
    assert set(by_id) == set(bad)
    windows = journal(tmp_path / "data", SINK)
    for index, (column, value) in bad.items():
        letter = by_id[index]
        assert letter["component"] == SINK and letter["column"] == column
        assert value in letter["reason"] and column in letter["reason"]
        assert letter["window"] in windows
        staged = Path(letter["origin"])  # the staged file, and the row's line in it
        assert staged.parent.name == letter["window"]
        lines = staged.read_text().splitlines()
        assert lines[letter["line"] - 1] == letter["raw"]
        assert staged.read_bytes()[letter["offset"]:].startswith(letter["raw"].encode())
    assert [w["state"] for w in windows.values()] == ["loaded"] * 5
    assert sum(w["rows_rejected"] for w in windows.values()) == len(bad)
    assert sum(w["rows"] for w in windows.values()) == len(good)
    sink = done.summary["sinks"][SINK]
    assert sink["rows_loaded"] == len(good) and sink["rows_rejected"] == len(bad)
    assert "windows_failed" not in sink and "failed_windows" not in sink
    assert "could not convert" in done.stderr



def test_cells_an_existing_table_cannot_take_are_dead_lettered(tmp_path: Path) -> None:
    """The table existed before with its own types (INTEGER, DATE, a NOT NULL default),
    the config types nothing: a cell that does not fit the table's column is
    dead-lettered, not the whole window failed."""
    db = tmp_path / "data" / "streamer.duckdb"
    db.parent.mkdir(parents=True)
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE events (id INTEGER, day DATE, note VARCHAR, "
                "origin VARCHAR NOT NULL DEFAULT 'app')")
    con.close()
    records = [{"id": i, "day": f"2024-05-{1 + i % 28:02d}", "note": f"n{i}"} for i in range(300)]
    bad = {17: ("id", 2**40), 101: ("day", "someday"), 250: ("id", "12abc")}
    for index, (column, value) in bad.items():
        records[index] = dict(records[index], **{column: value})
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(source, name="input", follow=False)
                          + stage_sink(tmp_path, columns=["id", "day", "note"],
                                       max_file_age_s=None)
                          + "[sinks.stage.load]\n"
                          + toml_keys(type="duckdb", table="events", delete_staged=False))

    done = run_cli("run", "-c", str(config))

    assert done.code == 0, done.stderr[-3000:]
    con = duckdb.connect(str(db), read_only=True)
    try:
        loaded = sorted(con.execute("SELECT id, day::VARCHAR, note, origin FROM events")
                        .fetchall())
    finally:
        con.close()
    assert loaded == [(r["id"], r["day"], r["note"], "app")
                      for i, r in enumerate(records) if i not in bad]
    letters = read_dead_letters(tmp_path / "data", SINK)
    assert sorted((letter["column"], letter["raw"].split(",")[2]) for letter in letters) == \
        sorted((column, f"n{index}") for index, (column, _) in bad.items())
    assert done.summary["sinks"][SINK]["rows_rejected"] == len(bad)

def test_a_new_column_is_added_to_the_existing_table(tmp_path: Path) -> None:
    db = tmp_path / "data" / "streamer.duckdb"
    db.parent.mkdir(parents=True)
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE events (id BIGINT, ts TIMESTAMP, status BIGINT)")
    con.execute("INSERT INTO events VALUES (-1, '2024-01-01 00:00:00', 1)")
    con.close()
    records = make_records(3000)
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)

    done = run_cli("run", "-c", str(config(tmp_path, source)))

    assert done.code == 0, done.stderr[-3000:]
    old = (-1, datetime(2024, 1, 1), 1, None)
    assert table_rows(db) == sorted([old, *map(as_row, records)], key=lambda r: r[0])
    assert read_dead_letters(tmp_path / "data", SINK) == []


# -- a full disk ---------------------------------------------------------------------------
def test_a_full_disk_is_retried_until_space_is_freed(tmp_path: Path) -> None:
    records = make_records(20_000)
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    with small_filesystem(tmp_path / "db", "24m") as mounted:
        db = mounted / "streamer.duckdb"
        filler = fill(mounted)
        filler.write_bytes(b"\0" * (filler.stat().st_size - 600_000))  # ~600 KB free
        cfg = config(tmp_path, source, db_path=db)
        daemon = Daemon(cfg, tmp_path / "run.log")
        try:
            wait_until(lambda: daemon.log.count("retrying in") >= 3, timeout=60,
                       what="loads failing on the full disk and retried")
            states = {w["state"] for w in journal(tmp_path / "data", SINK).values()}
            assert "failed" not in states, daemon.log[-3000:]
            assert "No space left" in daemon.log
            filler.unlink()  # space freed: the same run loads every window
            assert daemon.wait(90) == 0, daemon.log[-3000:]
        finally:
            daemon.stop()
        assert table_rows(db) == sorted(map(as_row, records))
    windows = journal(tmp_path / "data", SINK)
    assert [w["state"] for w in windows.values()] == ["loaded"] * 5
    sink = summary_of(daemon.log)["sinks"][SINK]
    assert sink["rows_loaded"] == len(records) and "windows_failed" not in sink
    assert "cannot rollback" not in daemon.log


# -- a staged file deleted from outside ---------------------------------------------------
def staged_not_loaded(tmp: Path, records: list[dict[str, Any]]) -> tuple[Path, list[str]]:
    """A one-shot run killed while another process holds the database's lock: every
    window closed in the journal, none loaded. Returns the source and the window ids."""
    source = tmp / "in.ndjson"
    write_ndjson(source, records)
    db = tmp / "data" / "streamer.duckdb"
    db.parent.mkdir(parents=True)
    holder = duckdb.connect(str(db))  # the lock: every load waits and retries
    try:
        daemon = Daemon(config(tmp, source, sink="max_file_records = 1000\nwindow_files = 1\n"),
                        tmp / "first.log")
        try:
            def all_closed() -> bool:
                windows = journal(tmp / "data", SINK)
                return (len(windows) == len(records) // 1000
                        and all(w["state"] in ("closed", "loading") for w in windows.values())
                        and checkpoint_offset(tmp / "data", "input") == source.stat().st_size)
            wait_until(all_closed, timeout=60, what="every window closed and checkpointed, "
                                                    "none loaded")
        finally:
            daemon.kill()
    finally:
        holder.close()
    return source, sorted(journal(tmp / "data", SINK))


def test_a_missing_staged_file_fails_its_window_only_and_loads_retry_loads_it(
        tmp_path: Path) -> None:
    records = make_records(3000)
    source, windows = staged_not_loaded(tmp_path, records)
    staged = tmp_path / SINK / windows[0] / "part-00001.csv"
    aside = tmp_path / "aside.csv"
    shutil.move(staged, aside)  # deleted from outside
    cfg = config(tmp_path, source, sink="max_file_records = 1000\nwindow_files = 1\n")
    db = tmp_path / "data" / "streamer.duckdb"

    started = time.monotonic()
    done = run_cli("run", "-c", str(cfg))

    assert done.code == 1, done.stderr[-3000:]  # a one-shot run with a failed window
    assert time.monotonic() - started < 20  # no shutdown deadline waited out
    sink = done.summary["sinks"][SINK]
    assert sink["windows_failed"] == 1 and sink["windows_loaded"] == 2
    error = sink["failed_windows"][windows[0]]
    assert str(staged) in error and "missing" in error and windows[0] in error
    assert str(staged) in done.stderr
    assert table_rows(db) == sorted(map(as_row, records[1000:]))
    assert journal(tmp_path / "data", SINK)[windows[0]]["state"] == "failed"

    shutil.move(aside, staged)  # restored
    unknown = run_cli("loads", "retry", "-c", str(cfg), "20990101T000000000000Z-0")
    assert unknown.code == 1 and "20990101T000000000000Z-0" in unknown.stdout
    retried = run_cli("loads", "retry", "-c", str(cfg))
    assert retried.code == 0, retried.stdout + retried.stderr
    assert windows[0] in retried.stdout and "1 windows marked for retry" in retried.stdout
    assert journal(tmp_path / "data", SINK)[windows[0]]["state"] == "closed"

    again = run_cli("run", "-c", str(cfg))

    assert again.code == 0, again.stderr[-3000:]
    assert again.summary["sinks"][SINK]["windows_loaded"] == 1
    assert "failed_windows" not in again.summary["sinks"][SINK]
    assert table_rows(db) == sorted(map(as_row, records))
    assert {w["state"] for w in journal(tmp_path / "data", SINK).values()} == {"loaded"}


def test_a_file_that_is_not_a_duckdb_database_fails_the_window_and_check_connect(
        tmp_path: Path) -> None:
    """load.path names a file DuckDB cannot open as a database: no retry can get
    past that (before, a one-shot run retried it for ever; `check --connect` said ok)."""
    records = make_records(50)
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    db = tmp_path / "app.log"
    db.write_text("2024-05-01 started\n")  # load.path pointing at a file of another kind
    cfg = config(tmp_path, source, db_path=db)
    checked = run_cli("check", "-c", str(cfg), "--connect")
    assert checked.code == 1, checked.stdout + checked.stderr
    assert f"FAILED: {db} is not a DuckDB database" in checked.stdout, checked.stdout

    done = run_cli("run", "-c", str(cfg), timeout=60)

    assert done.code == 1, done.stderr[-3000:]
    [error] = done.summary["sinks"][SINK]["failed_windows"].values()
    assert "not a valid DuckDB database file" in error, error
    assert db.read_text() == "2024-05-01 started\n"  # left as it was


def test_a_directory_as_load_path_fails_the_window_and_check_connect(tmp_path: Path) -> None:
    """load.path naming a directory (`path = "/var/lib/streamer"`): a one-shot run
    retried "Could not read from file ...: Is a directory" for ever."""
    records = make_records(20)
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    db = tmp_path / "db"
    db.mkdir()
    cfg = config(tmp_path, source, db_path=db)
    checked = run_cli("check", "-c", str(cfg), "--connect")
    assert checked.code == 1, checked.stdout + checked.stderr
    assert f"FAILED: {db} is a directory" in checked.stdout, checked.stdout

    done = run_cli("run", "-c", str(cfg), timeout=60)

    assert done.code == 1, done.stderr[-3000:]
    [error] = done.summary["sinks"][SINK]["failed_windows"].values()
    assert "Is a directory" in error, error


def test_a_failed_window_shows_in_health_and_later_windows_load(tmp_path: Path) -> None:
    records = make_records(3000)
    source, windows = staged_not_loaded(tmp_path, records)
    (tmp_path / SINK / windows[1] / "part-00001.csv").unlink()
    port = free_port()
    cfg = config(tmp_path, source, follow=True, api=f"127.0.0.1:{port}",
                 sink="max_file_records = 1000\nwindow_files = 1\nmax_file_age_s = 0.5\n")
    daemon = Daemon(cfg, tmp_path / "daemon.log")
    try:
        data = tmp_path / "data"
        wait_until(lambda: [journal(data, SINK)[w]["state"] for w in windows]
                   == ["loaded", "failed", "loaded"], timeout=30,
                   what="the windows around the missing file to load")
        status, body = health(port)
        assert status == 200 and body["status"] == "degraded", body
        assert body["sinks"][SINK]["state"] == "degraded"
        assert windows[1] in body["sinks"][SINK]["failed_windows"]
        assert "part-00001.csv" in body["sinks"][SINK]["failed_windows"][windows[1]]
        events = scrape(port)
        assert events[("streamer_stage_windows_total",
                        (("sink", SINK), ("state", "failed")))] == 1
        assert events[("streamer_stage_windows_current",
                        (("sink", SINK), ("state", "failed")))] == 1

        more = make_records(500, start=3000)
        write_ndjson(source, more, mode="ab")  # a later window still loads
        wait_until(lambda: sum(w["state"] == "loaded" for w in journal(data, SINK).values())
                   == 3, timeout=30, what="a window after the failed one to load")
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(20) == 0, daemon.log[-3000:]  # a daemon's stop: exit 0
        assert time.monotonic() - started < 10
    finally:
        daemon.stop()
    expected = records[:1000] + records[2000:] + more
    assert table_rows(tmp_path / "data" / "streamer.duckdb") == sorted(map(as_row, expected))
    summary = summary_of(daemon.log)["sinks"][SINK]
    assert list(summary["failed_windows"]) == [windows[1]]


# -- Timestream and Data Exchange ---------------------------------------------------------
def test_a_failed_timestream_task_fails_its_window_and_loads_retry_loads_it(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    ts.setup_table(emu, "requests")
    emu.configure(task_delay=0.05)
    good = list(iter_records(400, seed=5))
    bad = [dict(good[0], time="yesterday"), dict(good[1], latency_ms="fast")]
    source = tmp_path / "in.ndjson"
    write_ndjson(source, good[2:200] + bad + good[200:])
    cfg = ts.config(tmp_path, moto_s3, emu, s3_bucket, source, "requests")
    env = moto_s3.aws_env()

    done = run_cli("run", "-c", str(cfg), env=env)

    assert done.code == 1, done.stderr[-3000:]
    (window_id,) = journal(tmp_path / "data")
    error = done.summary["sinks"]["st"]["failed_windows"][window_id]
    (task,) = emu.tasks()
    assert task["TaskStatus"] == "FAILED" and task["TaskId"] in error and window_id in error
    assert f"s3://{s3_bucket}/{ts.PREFIX}_reports/" in error
    assert journal(tmp_path / "data")[window_id]["state"] == "failed"
    letters = read_dead_letters(tmp_path / "data", "st")  # the rows the report names
    s3 = moto_s3.s3()
    assert sorted(letter["raw"].split(",")[0] for letter in letters) == sorted(
        str(r["time"]) for r in bad)  # `time` is the first column
    for letter in letters:
        assert letter["window"] == window_id and letter["task_id"] == task["TaskId"]
        bucket, _, key = letter["origin"].removeprefix("s3://").partition("/")
        staged = read_object(s3, bucket, key)
        assert staged.split(b"\n")[letter["line"] - 1].rstrip(b"\r").decode() == letter["raw"]
        assert staged[letter["offset"]:].startswith(letter["raw"].encode())
        assert letter["reason"]
    assert done.summary["sinks"]["st"]["rows_rejected"] == len(bad)

    # the operator removes the bad rows from the staged objects
    removed = 0
    for key in staged_keys(s3, s3_bucket, f"{ts.PREFIX}{window_id}/"):
        lines = read_object(s3, s3_bucket, key).split(b"\r\n")
        kept = [line for line in lines if b"yesterday" not in line and b",fast," not in line]
        removed += len(lines) - len(kept)
        s3.put_object(Bucket=s3_bucket, Key=key, Body=b"\r\n".join(kept))
    assert removed == len(bad)
    retried = run_cli("loads", "retry", "-c", str(cfg), window_id)
    assert retried.code == 0 and window_id in retried.stdout, retried.stdout + retried.stderr
    # throttled and failing AWS calls are retried, never a failed window
    emu.set_faults("timestream-write", script=[
        {"operation": "CreateBatchLoadTask", "error": "ThrottlingException", "count": 2},
        {"operation": "DescribeBatchLoadTask", "error": "InternalServerException", "count": 2}])

    again = run_cli("run", "-c", str(cfg), env=env)

    assert again.code == 0, again.stderr[-3000:]
    tasks = ts.window_tasks(emu, window_id)
    assert [t["TaskStatus"] for t in tasks] == ["FAILED", "SUCCEEDED"]
    assert tasks[0]["ClientToken"] != tasks[1]["ClientToken"]  # a new task, not the failed one
    assert ts.table_rows(emu.rows(ts.DB, "requests")) == ts.expected_timestream(good[2:])
    window = journal(tmp_path / "data")[window_id]
    assert window["state"] == "loaded" and window["task_id"] == tasks[1]["TaskId"]
    assert "failed_windows" not in again.summary["sinks"]["st"]


def test_a_timestream_task_that_succeeded_with_failures_fails_its_window(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    """Not the documented contract (failures end FAILED), handled as if it were: the
    report's rows are dead-lettered, never counted as loaded, and the window fails."""
    emu = batchload_emulator
    ts.setup_table(emu, "requests")
    emu.configure(task_delay=0.05, succeed_with_failures=True)
    good = list(iter_records(300, seed=6))
    bad = [dict(good[0], time="yesterday"), dict(good[1], latency_ms="fast")]
    source = tmp_path / "in.ndjson"
    write_ndjson(source, good[2:150] + bad + good[150:])
    cfg = ts.config(tmp_path, moto_s3, emu, s3_bucket, source, "requests")

    done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env())

    assert done.code == 1, done.stderr[-3000:]
    (task,) = emu.tasks()
    assert task["TaskStatus"] == "SUCCEEDED"
    assert task["ProgressReport"]["RecordIngestionFailures"] \
        + task["ProgressReport"]["ParseFailures"] == len(bad)
    (window_id,) = journal(tmp_path / "data")
    assert journal(tmp_path / "data")[window_id]["state"] == "failed"
    sink = done.summary["sinks"]["st"]
    error = sink["failed_windows"][window_id]
    assert task["TaskId"] in error and "failures" in error
    assert f"s3://{s3_bucket}/{ts.PREFIX}_reports/" in error
    letters = read_dead_letters(tmp_path / "data", "st")
    assert sorted(letter["raw"].split(",")[0] for letter in letters) == sorted(
        str(r["time"]) for r in bad)
    assert {letter["task_id"] for letter in letters} == {task["TaskId"]}
    assert sink["rows_rejected"] == len(bad) and not sink.get("rows_loaded")
    # counted as the failed load it is, so an alert on state="failed" fires
    assert sink["load_jobs_failed"] == 1 and "load_jobs_succeeded" not in sink, sink
    # what the task did ingest is in the table: only the good rows
    assert ts.table_rows(emu.rows(ts.DB, "requests")) == ts.expected_timestream(good[2:])


def test_a_data_exchange_job_in_error_fails_its_window_and_loads_retry_loads_it(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    emu.configure(job_delay=1.0)
    data_set = emu.register_data_set()
    source = tmp_path / "in.ndjson"
    write_ndjson(source, iter_records(2500, seed=2))
    cfg = dx.dx_config(tmp_path, moto_s3, emu, s3_bucket, source, data_set, per_job=5)
    s3 = moto_s3.s3()
    daemon = Daemon(cfg, tmp_path / "run.log", env=moto_s3.aws_env())
    try:
        wait_until(lambda: any(j["State"] == "IN_PROGRESS" for j in emu.jobs()), timeout=30,
                   what="the import job to start")
        gone = staged_keys(s3, s3_bucket, dx.PREFIX)[1]
        body = read_object(s3, s3_bucket, gone)
        s3.delete_object(Bucket=s3_bucket, Key=gone)  # before the job reads it
        assert daemon.wait(60) == 1, daemon.log[-3000:]
    finally:
        daemon.stop()
    (window_id,) = journal(tmp_path / "data")
    error = summary_of(daemon.log)["sinks"]["st"]["failed_windows"][window_id]
    assert "ERROR" in error and gone in error and window_id in error

    s3.put_object(Bucket=s3_bucket, Key=gone, Body=body)  # restored
    assert run_cli("loads", "retry", "-c", str(cfg)).code == 0
    emu.configure(job_delay=0.05)
    emu.set_faults("dataexchange", script=[
        {"operation": "CreateJob", "error": "ThrottlingException", "count": 2},
        {"operation": "GetJob", "error": "InternalServerException", "count": 2}])

    again = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env())

    assert again.code == 0, again.stderr[-3000:]
    assert [j["State"] for j in emu.jobs()] == ["ERROR", "COMPLETED"]
    window = journal(tmp_path / "data")[window_id]
    assert window["state"] == "loaded"
    keys = staged_keys(s3, s3_bucket, dx.PREFIX)
    assert dx.assets_by_revision(emu, data_set) == {window["revision_id"]: keys}
