"""file -> local stage -> DuckDB, through the CLI as a subprocess."""

from __future__ import annotations

import contextlib
import random
import resource
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import duckdb
import orjson
import pytest

from bench.gen import COLUMN_TYPES, generate, iter_records
from tests.helpers import (
    BENCH_COLUMNS,
    REPO,
    Daemon,
    assert_same_multiset,
    assert_same_rows,
    assert_stage_equals,
    base_config,
    expected_rows,
    file_source,
    make_records,
    read_dead_letters,
    read_stage_rows,
    run_cli,
    stage_sink,
    stop,
    streamer_cmd,
    summary_of,
    toml_keys,
    wait_for_log,
    wait_until,
    write_config,
    write_ndjson,
)


def stage_config(tmp: Path, inputs: Path | str, *, follow: bool = False, load: bool = True,
                 max_file_age_s: float | None = None, checkpoint_interval_s: float | None = None,
                 extra_sink: str = "", extra_source: str = "") -> Path:
    load_table = ("[sinks.stage.load]\n"
                  # the tests read the staged files back after the load
                  + toml_keys(type="duckdb", table="events", column_types=COLUMN_TYPES,
                              delete_staged=False)
                  if load else "")
    return write_config(tmp, base_config(tmp, checkpoint_interval_s=checkpoint_interval_s)
                        + file_source(inputs, name="input", follow=follow,
                                      extra="glob_interval_ms = 100\nrotate_wait_s = 0.5\n"
                                            + extra_source)
                        + stage_sink(tmp, columns=BENCH_COLUMNS, fsync=None,
                                     max_file_age_s=max_file_age_s, extra=extra_sink)
                        + load_table)


def duckdb_rows(tmp: Path) -> list[tuple]:
    con = duckdb.connect(str(tmp / "data" / "streamer.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT {', '.join(BENCH_COLUMNS)} FROM events").fetchall()
    finally:
        con.close()


def as_tuples(records) -> Counter:
    return Counter(tuple(r.get(c) for c in BENCH_COLUMNS) for r in records)


def test_file_to_stage_to_duckdb_contents(tmp_path):
    n = 200_000
    generate(tmp_path / "in.ndjson", n, seed=7)
    config = stage_config(tmp_path, tmp_path / "in.ndjson",
                          extra_sink="max_file_records = 30000\nwindow_files = 3")
    done = run_cli("run", "-c", str(config))
    assert done.code == 0, done.stderr[-3000:]
    summary = done.summary
    assert summary["sources"]["input"] == {
        "records": n, "bytes": (tmp_path / "in.ndjson").stat().st_size, "rejected": 0}
    sink = summary["sinks"]["stage"]
    assert (sink["received"], sink["delivered"], sink["in_flight"]) == (n, n, 0)
    assert sink["files_staged"] == 7 and sink["windows_loaded"] == 3
    assert sink["rows_loaded"] == n

    records = list(iter_records(n, 7))
    header, rows = read_stage_rows(tmp_path / "stage")
    assert header == BENCH_COLUMNS
    # one reader, one sink: order kept
    assert_same_rows(rows, expected_rows(records, BENCH_COLUMNS))
    assert_same_multiset(Counter(duckdb_rows(tmp_path)), as_tuples(records))
    windows = sorted(p.name for p in (tmp_path / "stage").iterdir() if p.name != "_tmp")
    assert len(windows) == 3
    assert [len(list((tmp_path / "stage" / w).glob("part-*.csv"))) for w in windows] == [3, 3, 1]


def test_kill_9_and_restart_loses_nothing(tmp_path):
    n = 200_000
    generate(tmp_path / "in.ndjson", n, seed=3)
    config = stage_config(tmp_path, tmp_path / "in.ndjson", checkpoint_interval_s=0.2,
                          extra_sink="max_file_records = 20000\nwindow_files = 2")
    daemon = Daemon(config, tmp_path / "run1.log")
    stage = tmp_path / "stage"
    wait_until(lambda: len(list(stage.glob("*/part-*.csv"))) >= 2, timeout=60,
               what="two staged files")
    daemon.kill()
    assert daemon.proc.returncode == -signal.SIGKILL

    done = run_cli("run", "-c", str(config))
    assert done.code == 0, done.stderr[-3000:]
    records = list(iter_records(n, 3))
    _, rows = read_stage_rows(stage)
    staged = Counter(map(tuple, rows))
    wanted = Counter(map(tuple, expected_rows(records, BENCH_COLUMNS)))
    assert not wanted - staged, "records lost after kill -9"
    duplicates = sum((staged - wanted).values())
    # only what was read but not yet acknowledged (the open file, the buffer)
    # may come again
    assert duplicates <= 20_000 + 4 * 5000 + 10_000
    loaded = Counter(duckdb_rows(tmp_path))
    assert not as_tuples(records) - loaded
    assert sum(loaded.values()) == len(rows)  # every staged window loaded exactly once
    assert not list((stage / "_tmp" / "0").iterdir())


def test_sigterm_drains_and_exits_0(tmp_path):
    n = 30_000
    generate(tmp_path / "in.ndjson", n, seed=5)
    config = stage_config(tmp_path, tmp_path / "in.ndjson", follow=True, max_file_age_s=3600,
                          extra_sink="window_age_s = 3600")
    daemon = Daemon(config, tmp_path / "run.log")
    wait_until(lambda: "reading" in daemon.log, what="the source to start")
    # everything is read but sits in an open stage file until shutdown closes it
    checkpoint = tmp_path / "data" / "checkpoints" / "input.json"
    stop(daemon)
    summary = orjson.loads(daemon.log.strip().splitlines()[-1])
    sink = summary["sinks"]["stage"]
    assert sink["delivered"] == summary["sources"]["input"]["records"]
    assert sink["in_flight"] == 0
    records = list(iter_records(n, 5))
    _, rows = read_stage_rows(tmp_path / "stage")
    delivered = sink["delivered"]
    assert_same_rows(rows, expected_rows(records[:delivered], BENCH_COLUMNS))
    assert_same_multiset(Counter(duckdb_rows(tmp_path)), as_tuples(records[:delivered]))
    saved = orjson.loads(checkpoint.read_bytes())["files"][0]["offset"]
    with open(tmp_path / "in.ndjson", "rb") as fh:
        assert fh.read(saved).count(b"\n") == delivered


def test_bad_input_goes_to_dead_letters_and_run_goes_on(tmp_path):
    good = [{"time": i, "message": f"m{i}"} for i in range(6)]
    long_line = b'{"x":"' + b"y" * 5000 + b'"}'
    bad = [b"not json", b"[1,2,3]", b'"just a string"', b'{"a":"\xff\xfe"}',
           b'{"s":"\\udc00"}', b'{"nul":"a\x00\x00', b'{"big":123456789012345678901234567890}',
           b'{"deep":' + b"[" * 3000 + b"]" * 3000 + b"}", long_line, b'{"cut":']
    body = bytearray(b"\xef\xbb\xbf")  # a BOM at the start is skipped, not an error
    offsets = []
    for i, item in enumerate(bad):
        body += orjson.dumps(good[i % 6]) + b"\r\n" + b"\n"  # CRLF endings, blank lines
        offsets.append(len(body))
        body += item + b"\n"
    (tmp_path / "in.ndjson").write_bytes(bytes(body))
    config = stage_config(tmp_path, tmp_path / "in.ndjson", load=False,
                          extra_source="max_line_bytes = 1000")
    done = run_cli("run", "-c", str(config))
    assert done.code == 0, done.stderr[-3000:]
    assert done.summary["sources"]["input"]["rejected"] == len(bad)
    assert done.summary["sinks"]["stage"]["delivered"] == len(bad)
    letters = read_dead_letters(tmp_path / "data", "input")
    assert [d["offset"] for d in letters] == offsets
    assert all(d["origin"] == str(tmp_path / "in.ndjson") and d["reason"] for d in letters)
    for item, letter in zip(bad, letters, strict=True):
        if "raw" in letter:  # a NUL hole ends its line: raw is the part before it
            expected = item.split(b"\x00")[0][:1000]
            assert letter["raw"].encode() == expected
        else:
            assert letter["raw_base64"]  # invalid UTF-8 kept exactly, as base64
    assert "max_line_bytes" in letters[8]["reason"]
    assert "64-bit" in letters[6]["reason"]
    _, rows = read_stage_rows(tmp_path / "stage")
    assert_same_rows(rows, expected_rows([good[i % 6] for i in range(len(bad))],
                                         BENCH_COLUMNS))


def test_tailing_new_files_rename_rotation_and_copytruncate(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    config = stage_config(tmp_path, logs / "*.ndjson*", follow=True, load=False,
                          max_file_age_s=0.3)
    daemon = Daemon(config, tmp_path / "run.log")
    expected = []
    try:
        def emit(path: Path, start: int, count: int) -> None:
            batch = [{"time": i, "message": path.name} for i in range(start, start + count)]
            write_ndjson(path, batch, mode="ab")
            expected.extend(batch)

        def delivered() -> int:
            _, rows = read_stage_rows(tmp_path / "stage")
            return len(rows)

        app = logs / "app.ndjson"
        emit(app, 0, 100)
        wait_until(lambda: delivered() == 100, what="first lines")
        emit(app, 100, 50)                      # appended while tailing
        wait_until(lambda: delivered() == 150, what="appended lines")
        app.rename(logs / "app.ndjson.1")       # rotation by rename ...
        emit(logs / "app.ndjson.1", 150, 10)    # ... late writes to the old file
        emit(app, 1000, 40)                     # ... and a new file at the path
        emit(logs / "other.ndjson", 2000, 30)   # a new file matching the glob
        wait_until(lambda: delivered() == 230, what="rotated and new files")
        copy = logs / "other.ndjson"
        with open(copy, "r+b") as fh:           # copytruncate
            fh.truncate(0)
        emit(copy, 3000, 5)
        wait_until(lambda: delivered() == 235, what="lines after copytruncate")
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    _, rows = read_stage_rows(tmp_path / "stage")
    got = Counter((int(r[0]), r[BENCH_COLUMNS.index("message")]) for r in rows)
    assert_same_multiset(got, Counter((r["time"], r["message"]) for r in expected))  # nothing twice


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


@pytest.mark.parametrize("follow", [False, True])
def test_more_files_than_descriptors(tmp_path, follow):
    """600 files under `ulimit -n 256`: the default max_open_files keeps the source
    under the limit; followed files give their descriptors up in turn and are
    reopened by identity, so lines appended later to every file are read too."""
    logs = tmp_path / "logs"
    logs.mkdir()
    expected = []

    def emit(line: int) -> None:
        for i in range(600):
            batch = [{"time": line, "message": f"file {i} line {line}"}]
            write_ndjson(logs / f"f{i:03}.ndjson", batch, mode="ab")
            expected.extend(batch)

    emit(0)
    emit(1)
    config = stage_config(tmp_path, logs / "*.ndjson", follow=follow, load=False,
                          max_file_age_s=0.3)
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(streamer_cmd("run", "-c", str(config)), cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                preexec_fn=limit_descriptors)
    try:
        if follow:
            def delivered() -> int:
                return len(read_stage_rows(tmp_path / "stage")[1])
            wait_until(lambda: delivered() == 1200, timeout=60, what="every file")
            emit(2)
            wait_until(lambda: delivered() == 1800, timeout=60, what="appended lines")
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert "Too many open files" not in text and "cannot open" not in text
    assert summary_of(text)["sources"]["input"]["records"] == len(expected)
    _, rows = read_stage_rows(tmp_path / "stage")
    got = Counter((int(r[0]), r[BENCH_COLUMNS.index("message")]) for r in rows)
    assert_same_multiset(got, Counter((r["time"], r["message"]) for r in expected))


def test_a_glob_that_matches_nothing_is_a_warning(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    once = run_cli("run", "-c", str(stage_config(tmp_path, logs / "*.ndjson", load=False)))
    assert once.code == 0, once.stderr[-3000:]
    warnings = [line for line in once.stderr.splitlines() if "WARNING" in line]
    assert any(f"{logs}/*.ndjson matches no file" in line for line in warnings), once.stderr
    assert any("source input read no file" in line for line in warnings), once.stderr
    config = stage_config(tmp_path, logs / "*.ndjson", follow=True, load=False,
                          max_file_age_s=0.3)
    daemon = Daemon(config, tmp_path / "run.log")
    try:
        wait_for_log(daemon, "matches no file; files that appear later are read")
        write_ndjson(logs / "late.ndjson", [{"time": 1, "message": "late"}])
        wait_until(lambda: read_stage_rows(tmp_path / "stage")[1], what="the late file")
        stop(daemon)
    finally:
        daemon.stop()
    _, rows = read_stage_rows(tmp_path / "stage")
    assert [(r[0], r[BENCH_COLUMNS.index("message")]) for r in rows] == [("1", "late")]


def test_stdin_to_stage(tmp_path):
    records = list(iter_records(5000, 11))
    data = b"".join(orjson.dumps(r) + b"\n" for r in records) + b"{bad\n"
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                          + "[sources.in]\n" + toml_keys(type="stdin")
                          + stage_sink(tmp_path, columns=BENCH_COLUMNS, max_file_age_s=None,
                                       fsync=None))
    done = run_cli("run", "-c", str(config), stdin=data)
    assert done.code == 0, done.stderr[-2000:]
    assert done.summary["sources"]["in"] == {"records": 5000, "bytes": len(data), "rejected": 1}
    _, rows = read_stage_rows(tmp_path / "stage")
    assert_same_rows(rows, expected_rows(records, BENCH_COLUMNS))


def test_sigterm_while_stdin_streams_delivers_every_record_read(tmp_path):
    """stdin cannot be read again: a SIGTERM while a read waits for room in a full
    sink buffer must still deliver it (before, that chunk was dropped with the
    cancelled source: records counted as read, never staged, exit 0)."""
    records = list(iter_records(40_000, 5))
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                          + "[sources.in]\n" + toml_keys(type="stdin", read_bytes=65536)
                          + stage_sink(tmp_path, columns=BENCH_COLUMNS, max_file_age_s=None,
                                       fsync=None, extra="batch = { max_records = 500 }\n"
                                       "buffer = { max_batches = 1 }"))
    with open(tmp_path / "run.log", "wb") as log:
        proc = subprocess.Popen(streamer_cmd("run", "-c", str(config)), cwd=REPO,
                                stdin=subprocess.PIPE, stdout=log, stderr=log)
        try:
            proc.stdin.write(data[:len(data) // 2])  # returns once the pipe took it
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(data[len(data) // 2:len(data) // 2 + 65536])
            proc.stdin.close()
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    summary = summary_of((tmp_path / "run.log").read_text())
    read = summary["sources"]["in"]["records"]
    sink = summary["sinks"]["stage"]
    assert (sink["received"], sink["delivered"], sink["in_flight"]) == (read, read, 0), summary
    _, rows = read_stage_rows(tmp_path / "stage")
    assert_same_rows(rows, expected_rows(records[:read], BENCH_COLUMNS))


def test_a_run_stopped_by_sigterm_and_run_again_stages_each_record_once(tmp_path):
    """A clean stop delivers every chunk the file source has read, so the checkpoint
    covers it: the next run does not stage it again (before, the chunk whose put
    waited for room in the full buffer was cut: its first records delivered, the
    rest dropped, so the checkpoint stayed before all of it and the next run
    staged the delivered part a second time)."""
    records = make_records(30_000, seed=6)
    source = tmp_path / "in.ndjson"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    config = write_config(tmp_path, base_config(tmp_path) + file_source(
        source, name="in", follow=False, extra="read_bytes = 262144") + stage_sink(
        tmp_path, max_file_age_s=None, extra="max_file_records = 2000\n"
        "batch = { max_records = 100 }\nbuffer = { max_batches = 1 }"))
    daemon = Daemon(config, tmp_path / "first.log")
    try:
        wait_until(lambda: read_stage_rows(tmp_path / "stage")[1], timeout=30,
                   what="a first staged file")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, daemon.log[-3000:]
    finally:
        daemon.stop()
    first = summary_of(daemon.log)
    assert first["sources"]["in"]["records"] < len(records)  # stopped half way
    again = run_cli("run", "-c", str(config))
    assert again.code == 0, again.stderr[-3000:]
    assert_stage_equals(tmp_path / "stage", records)  # each once


def test_check_reports_topology_or_one_line_per_problem(tmp_path):
    good = stage_config(tmp_path, "/var/log/*.ndjson")
    done = run_cli("check", "-c", str(good))
    assert done.code == 0
    assert "input (file)" in done.stdout and "stage (stage) <- input" in done.stdout
    assert "load: duckdb" in done.stdout
    bad = write_config(tmp_path, good.read_text().replace(
        'type = "stage"', 'type = "stage"\nmax_file_records = 0\nwhat = 1'), "bad.toml")
    done = run_cli("check", "-c", str(bad))
    assert done.code == 2
    assert sorted(done.stderr.strip().splitlines()) == [
        "sinks.stage.max_file_records: Input should be greater than 0",
        "sinks.stage.what: Extra inputs are not permitted"]


@pytest.mark.parametrize("seed", [1])
def test_random_kill_points_never_lose_records(tmp_path, seed):
    """Several kill -9 at random moments of one load, then a clean finish."""
    rng = random.Random(seed)
    n = 60_000
    generate(tmp_path / "in.ndjson", n, seed=seed)
    config = stage_config(tmp_path, tmp_path / "in.ndjson", checkpoint_interval_s=0.05,
                          extra_sink="max_file_records = 5000\nwindow_files = 2")
    for attempt in range(3):
        daemon = Daemon(config, tmp_path / f"run{attempt}.log")
        wait_until(lambda d=daemon: "reading" in d.log, what="start")
        time.sleep(rng.uniform(0.05, 0.6))
        daemon.kill()
    done = run_cli("run", "-c", str(config))
    assert done.code == 0, done.stderr[-2000:]
    _, rows = read_stage_rows(tmp_path / "stage")
    wanted = Counter(map(tuple, expected_rows(iter_records(n, seed), BENCH_COLUMNS)))
    assert not wanted - Counter(map(tuple, rows))
    assert not as_tuples(iter_records(n, seed)) - Counter(duckdb_rows(tmp_path))
