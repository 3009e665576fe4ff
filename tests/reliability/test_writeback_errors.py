"""A disk whose write-back fails: write() succeeds (the page cache takes it), and the
error comes at fsync.  Linux then marks the pages clean, so a second fsync succeeds
although the bytes never reached the device ("fsyncgate": PostgreSQL panics on it).
A thin-provisioned volume that runs out of space, a network block device or a dying
disk do this; here an ext4 on a loop device whose backing tmpfs is full.  Needs root
(mount, losetup), like the CI machine and `make test`."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import orjson
import pytest

from streamer.sinks.stage.journal import Journal, Window
from tests.fixtures.td import TDEmulator
from tests.helpers import (
    Daemon,
    assert_stage_equals,
    base_config,
    checkpoint_offset,
    file_source,
    journal,
    make_records,
    multiset,
    ndjson,
    read_dead_letters,
    run_cli,
    stage_sink,
    stop,
    stored,
    td_sink,
    toml_keys,
    wait_for_log,
    wait_until,
    write_config,
    write_ndjson,
)
from tests.helpers.filesystems import fill, remount, thin_filesystem

pytestmark = pytest.mark.timeout(120)


def test_a_stage_file_whose_fsync_failed_is_never_acknowledged(tmp_path: Path) -> None:
    """Before 2026-12-05 the failed fsync was retried until it 'passed', the file was
    renamed into its window and its records acknowledged: the run exited 0 with
    records the device never got (zeros where they were).  Now the run stops, nothing
    acknowledged; a daemon started again while the device still fails (systemd's
    Restart=on-failure) stops the same way; once it takes writes every record is
    staged and loaded once."""
    records = make_records(20_000)
    write_ndjson(tmp_path / "in.ndjson", records)
    database = tmp_path / "events.duckdb"
    with thin_filesystem(tmp_path / "thin") as (disk, backing):
        stage = disk / "stage"

        def config(follow: bool) -> Path:
            return write_config(tmp_path, base_config(tmp_path, oneshot_give_up_s=20)
                                + file_source(tmp_path / "in.ndjson", follow=follow)
                                + stage_sink(tmp_path, url=f"file://{stage}/", fsync=True,
                                             max_file_age_s=1 if follow else 600)
                                + "[sinks.stage.load]\n"
                                + toml_keys(type="duckdb", table="events", path=str(database),
                                            delete_staged=False))

        filler = fill(backing)
        first = run_cli("run", "-c", str(config(follow=False)), timeout=60)
        assert first.code == 1, first.stderr[-3000:]
        _assert_stopped_at_the_fsync(first.stderr)
        assert first.summary["sinks"]["stage"]["delivered"] == 0
        assert not list(stage.glob("*/part-*")), "a file whose fsync failed was completed"

        restarted = Daemon(config(follow=True), tmp_path / "daemon.log")
        try:
            assert restarted.wait(60) == 1, restarted.log[-3000:]
        finally:
            restarted.stop()
        _assert_stopped_at_the_fsync(restarted.log)
        assert checkpoint_offset(tmp_path / "data", "events") == 0  # nothing acknowledged
        assert not list(stage.glob("*/part-*"))
        filler.unlink()  # the device takes writes again

        again = run_cli("run", "-c", str(config(follow=False)), timeout=60)
        assert again.code == 0, again.stderr[-3000:]
        remount(disk)  # what the device holds, not the page cache
        assert_stage_equals(stage, records)
    assert _loaded_rows(database) == _expected_rows(records)


def _assert_stopped_at_the_fsync(log: str) -> None:
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, log[-3000:]
    assert re.search(r"stage sink stage: fsync of \S+ failed \(\[Errno (28|5)\]",
                     errors[0]), errors
    assert "Traceback" not in log


def test_dead_letters_whose_fsync_failed_are_written_again(tmp_path: Path,
                                                          td_emulator: TDEmulator) -> None:
    """A checkpoint passes a bad line only once its dead letter is on disk.  Before
    2026-12-05 a failed fsync of the dead-letter file was simply tried again: the
    second one passed without the lost pages, the checkpoint moved past the bad lines
    and their dead letters were gone from the disk (zeros in the file)."""
    records = make_records(300)
    bad = [f'{{"id": {i}, "cut short'.encode() for i in range(300)]
    lines = [line for pair in zip(ndjson(records), bad, strict=True) for line in pair]
    (tmp_path / "in.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    with thin_filesystem(tmp_path / "thin") as (disk, backing):
        config = write_config(tmp_path, base_config(disk, checkpoint_interval_s=0.2)
                              + file_source(tmp_path / "in.ndjson")
                              + td_sink(td_emulator.url, api="ingest"))
        filler = fill(backing)
        daemon = Daemon(config, tmp_path / "daemon.log", env={"TD_WRITE_KEY": td_emulator.key})
        try:
            wait_for_log(daemon, r"checkpoint dead_letters not saved .*Errno (28|5)")
            wait_until(lambda: len(stored(td_emulator)) >= len(records), what="records sent")
            filler.unlink()  # the device takes writes again
            wait_for_log(daemon, r"checkpoint dead_letters saved again")
            size = (tmp_path / "in.ndjson").stat().st_size
            wait_until(lambda: checkpoint_offset(disk / "data", "events") == size,
                       what="the checkpoint at the end of the input")
            summary = stop(daemon)
        finally:
            daemon.stop()
        assert summary["sources"]["events"]["rejected"] == len(bad)
        remount(disk)  # what the device holds, not the page cache
        letters = read_dead_letters(disk / "data", "events")
        assert sorted(letter["raw"].encode() for letter in letters) == sorted(bad)
    assert multiset(stored(td_emulator)) == multiset(records)


def test_journal_events_whose_fsync_failed_are_written_again(tmp_path: Path) -> None:
    """The stage journal is what a restart resumes windows from.  Before 2026-12-05 a
    failed fsync of it was simply tried again: the second one passed without the lost
    pages, the run went on and exited 0, and the journal on the disk was NULs (its
    windows forgotten: a crash then left staged files that are never loaded)."""
    records = make_records(6_000)
    write_ndjson(tmp_path / "in.ndjson", records)
    database = tmp_path / "events.duckdb"
    with thin_filesystem(tmp_path / "thin") as (disk, backing):
        config = _loading_config(tmp_path, base_config(disk), database)
        _ends_0_once_space_is_back(config, tmp_path / "run.log", backing,
                                   r"checkpoint events not saved .*Errno (28|5)")
        loaded = {w: e for w, e in journal(disk / "data", "stage").items()
                  if e.get("state") == "loaded"}
        remount(disk)  # what the device holds, not the page cache
        assert journal(disk / "data", "stage") == loaded
    assert sum(e["records"] for e in loaded.values()) == len(records)
    assert _loaded_rows(database) == _expected_rows(records)



def test_a_loads_retry_appended_while_the_journal_fsync_failed_is_kept(
        tmp_path: Path) -> None:
    """`streamer loads retry` appends to the journal of a running process (under the
    flock both take).  The running process's journal fsync failed: its events since
    the last good fsync are cut back and written again.  Before 2026-12-05 the cut-back
    also dropped a retry's events appended in between, so the retried window stayed
    failed (the operator had to run the retry again)."""
    write_ndjson(tmp_path / "in.ndjson", make_records(10))
    with thin_filesystem(tmp_path / "thin") as (disk, backing):
        config = _loading_config(tmp_path, base_config(disk), tmp_path / "events.duckdb")
        running = Journal(disk / "data" / "journal" / "stage.ndjson")  # the daemon's
        running.open()
        failed = Window("20261205T000000000000Z-0")
        running.record(failed, state="failed", files=["part-00001.csv"], records=3,
                       error="window 20261205T000000000000Z-0 of sink stage failed: ...")
        assert running.flush() and not running.behind
        filler = fill(backing)
        later = Window("20261205T000100000000Z-0")
        # past every block written so far: its write-back needs space the device lacks
        running.record(later, state="open", note="x" * 8_000_000)
        assert running.behind and running.write_error is not None
        filler.unlink()  # the device takes writes again
        retried = run_cli("loads", "retry", "-c", str(config))
        assert retried.code == 0, retried.stdout + retried.stderr
        assert f"sink stage: window {failed.id} marked for retry" in retried.stdout
        assert running.flush() and not running.behind, running.write_error
        running.close()
        remount(disk)  # what the device holds, not the page cache
        on_disk = journal(disk / "data", "stage")
        events = (disk / "data" / "journal" / "stage.ndjson").read_bytes().splitlines()
    assert [orjson.loads(e)["window"] for e in events] == [failed.id, later.id, failed.id]
    assert on_disk[failed.id]["state"] == "closed" and on_disk[failed.id]["retries"] == 1
    assert on_disk[later.id] == {"window": later.id, "state": "open", "note": "x" * 8_000_000}


def test_a_duckdb_load_whose_fsync_failed_is_redone_from_what_the_disk_holds(
        tmp_path: Path) -> None:
    """DuckDB's fsync failed (a transient error: the load is retried).  Before
    2026-12-05 the retry read the database back from the page cache, where the pages
    whose write-back had failed still looked written: every window 'loaded', exit 0,
    and the database on the disk was "not a valid DuckDB database file".  Now a
    database the failed load created is removed (a .wal cut back to its size before
    the load) and the files' cached pages dropped: the retry starts from the disk."""
    records = make_records(6_000)
    write_ndjson(tmp_path / "in.ndjson", records)
    with thin_filesystem(tmp_path / "thin") as (disk, backing):
        database = disk / "events.duckdb"
        config = _loading_config(tmp_path, base_config(tmp_path, oneshot_give_up_s=60),
                                 database)
        _ends_0_once_space_is_back(config, tmp_path / "run.log", backing,
                                   r"loading window \S+ of sink stage failed \(.*Could not fsync")
        remount(disk)  # what the device holds, not the page cache
        rows = _loaded_rows(database)
    assert rows == _expected_rows(records)


def _loading_config(tmp_path: Path, base: str, database: Path) -> Path:
    """The input file -> a stage of 1,000-record files, two a window, loaded into
    `database`."""
    return write_config(tmp_path, base
                        + file_source(tmp_path / "in.ndjson", follow=False)
                        + stage_sink(tmp_path, extra="max_file_records = 1000\n"
                                     "window_files = 2\n")
                        + "[sinks.stage.load]\n"
                        + toml_keys(type="duckdb", table="events", path=str(database)))


def _loaded_rows(database: Path) -> list[tuple]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        rows = con.execute("SELECT id, host, message FROM events").fetchall()
    finally:
        con.close()
    return sorted(rows, key=lambda row: int(row[0]))


def _expected_rows(records: list[dict]) -> list[tuple]:
    return [(str(r["id"]), r["host"], r["message"]) for r in records]


def _ends_0_once_space_is_back(config: Path, log: Path, backing: Path, failed: str) -> None:
    """A one-shot run on the thin disk with its backing full: once it logs `failed`, the
    space comes back and the run must end with exit 0."""
    filler = fill(backing)
    run = Daemon(config, log)
    try:
        wait_for_log(run, failed)
        filler.unlink()  # the device takes writes again
        assert run.wait(60) == 0, run.log[-3000:]
    finally:
        run.stop()
