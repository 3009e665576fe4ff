"""`workers = N`: a supervisor and N worker processes, each owning a share of the
files, sharing the stage directory and the DuckDB database."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

import duckdb
import psutil

from tests.fixtures.td import TDEmulator
from tests.helpers import (
    COLUMNS,
    LISTENING,
    Daemon,
    assert_same_multiset,
    assert_stage_covers,
    assert_stage_equals,
    base_config,
    encode,
    file_source,
    free_port,
    health,
    make_records,
    ndjson,
    run_cli,
    scrape,
    send_in_pieces,
    socket_source,
    stage_files,
    stage_ids,
    stage_sink,
    stop,
    streamer_cmd,
    summary_of,
    td_sink,
    wait_for_log,
    wait_until,
    write_config,
    write_ndjson,
)


def _write_files(directory: Path, records: list[dict], files: int, mode: str = "wb") -> None:
    """Records spread round-robin over `files` files (appended to them with mode "ab")."""
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        write_ndjson(directory / f"part-{index}.ndjson", records[index::files], mode=mode)


def _workers_of(tmp: Path) -> dict[str, int]:
    """Stage rows per worker, from the instance id in the window names."""
    counts: Counter[str] = Counter()
    for path in (tmp / "stage").glob("*/part-*.csv"):
        counts[path.parent.name.rsplit("-", 1)[1]] += path.read_bytes().count(b"\n") - 1
    return dict(counts)


def test_finite_run_splits_files_between_workers_and_loads_one_table(tmp_path):
    records = make_records(40_000)
    _write_files(tmp_path / "in", records, files=8)
    load = '[sinks.stage.load]\ntype = "duckdb"\ntable = "events"\ndelete_staged = false\n'
    config = write_config(tmp_path, "workers = 2\n" + base_config(tmp_path)
                          + file_source(tmp_path / "in" / "*.ndjson", follow=False)
                          + stage_sink(tmp_path, extra=load))
    result = run_cli("run", "-c", str(config), timeout=180)
    assert result.code == 0, result.stderr[-3000:]
    summary = result.summary
    assert summary["sources"]["events"]["records"] == 40_000
    assert summary["sinks"]["stage"]["delivered"] == 40_000
    assert summary["sinks"]["stage"]["rows_loaded"] == 40_000
    assert summary["workers"] == {"0": {"exit_code": 0, "restarts": 0},
                                  "1": {"exit_code": 0, "restarts": 0}}
    # each file read by exactly one worker: every record exactly once
    assert_stage_equals(tmp_path / "stage", records)
    shares = _workers_of(tmp_path)
    assert set(shares) == {"w0", "w1"} and sum(shares.values()) == 40_000
    for index in (0, 1):
        assert (tmp_path / "data" / "shards" / str(index) / "checkpoints" / "events.json").exists()
    con = duckdb.connect(str(tmp_path / "data" / "streamer.duckdb"), read_only=True)
    try:
        loaded = Counter(r[0] for r in con.execute("SELECT id FROM events").fetchall())
    finally:
        con.close()
    assert_same_multiset(loaded, Counter(str(r["id"]) for r in records))


def test_daemon_merges_metrics_restarts_a_killed_worker_and_loses_nothing(tmp_path):
    first = make_records(20_000)
    _write_files(tmp_path / "in", first, files=6)
    port = free_port()
    config = write_config(tmp_path, "workers = 2\n"
                          + base_config(tmp_path, api=f"127.0.0.1:{port}")
                          + file_source(tmp_path / "in" / "*.ndjson")
                          + stage_sink(tmp_path))
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: sum(stage_ids(tmp_path / "stage").values()) >= 20_000, timeout=90,
                   what="first records staged")
        metrics = scrape(port)
        delivered = {dict(labels)["worker"]: value for (name, labels), value in metrics.items()
                     if name == "streamer_sink_delivered_total"}
        assert set(delivered) == {"0", "1"} and sum(delivered.values()) == 20_000
        status, body = health(port)
        assert status == 200 and set(body["workers"]) == {"0", "1"}

        supervisor = psutil.Process(daemon.proc.pid)
        workers = supervisor.children()
        assert len(workers) == 2
        # started by forking the supervisor: the same command line, no --shard
        assert [w.cmdline() for w in workers] == [supervisor.cmdline()] * 2
        # a stopped (hung) worker: /health answers 503 at once, not after its own
        # wait for the worker (a probe with a 1 s timeout saw a timeout)
        workers[1].suspend()
        try:
            wait_until(lambda: _worker_down(port, "1"), timeout=30,
                       what="/health 503 for the stopped worker, answered within 1 s")
            status, body = health(port, timeout=1)
            assert status == 503 and body["status"] == "failing"
            assert body["workers"]["0"]["status"] == "ok"
            assert re.fullmatch(r"no answer for \d+\.\d s", body["workers"]["1"]["reason"])
        finally:
            workers[1].resume()
        wait_until(lambda: health(port, timeout=1)[0] == 200, timeout=30,
                   what="/health 200 once the worker runs again")
        workers[0].kill()  # kill -9 one worker: the supervisor starts it again
        wait_for_log(daemon, r"worker \d exited with signal 9; restarting it")
        # ... as a fresh interpreter (a process with a running event loop must not fork)
        wait_until(lambda: any("--shard" in w.cmdline() for w in supervisor.children()),
                   what="a restarted worker")
        restarted = [w for w in supervisor.children() if "--shard" in w.cmdline()]
        assert len(restarted) == 1 and restarted[0].pid != workers[0].pid
        wait_until(lambda: sum(v for (n, _), v in scrape(port).items()
                               if n == "streamer_worker_restarts_total") == 1,
                   timeout=30, what="restart counted")
        more = make_records(10_000, seed=9, start=20_000)
        _write_files(tmp_path / "in", more, files=6, mode="ab")
        wait_until(lambda: len(stage_ids(tmp_path / "stage")) >= 30_000, timeout=90,
                   what="appended records staged")
        stop(daemon)
    finally:
        daemon.stop()
    counts = assert_stage_covers(tmp_path / "stage", first + more)
    # a worker killed before its files were acknowledged reads their tail again
    assert sum(counts.values()) - len(counts) <= 20_000


def test_socket_connections_spread_over_workers_on_one_port(tmp_path):
    records = make_records(12_000)
    port = free_port()
    config = write_config(tmp_path, "workers = 2\n" + base_config(tmp_path)
                          + socket_source("tcp", "length_prefixed", port=port)
                          + stage_sink(tmp_path))
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        wait_for_log(daemon, LISTENING.format(name="tcp"), count=2)  # both workers bound
        lines = ndjson(records)
        for connection in range(24):  # the kernel hashes each to a worker
            send_in_pieces(port, encode(lines[connection::24], "length_prefixed"), connection)
        wait_until(lambda: len(stage_ids(tmp_path / "stage")) >= 12_000, timeout=60,
                   what="records staged")
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert_stage_equals(tmp_path / "stage", records)
    assert summary["sinks"]["stage"]["delivered"] == 12_000
    shares = _workers_of(tmp_path)
    # 24 connections all hashed to one worker: a chance of 2**-23
    assert set(shares) == {"w0", "w1"} and sum(shares.values()) == 12_000


def test_data_dir_keeps_its_worker_count(tmp_path):
    records = make_records(100)
    _write_files(tmp_path / "in", records, files=2)
    body = base_config(tmp_path) + file_source(tmp_path / "in" / "*.ndjson", follow=False) \
        + stage_sink(tmp_path)
    single = write_config(tmp_path, body, name="one.toml")
    assert run_cli("run", "-c", str(single)).code == 0
    double = write_config(tmp_path, "workers = 2\n" + body, name="two.toml")
    refused = run_cli("run", "-c", str(double))
    assert refused.code == 2
    assert refused.stderr.strip().splitlines() == [
        f"workers: {tmp_path}/data holds the checkpoints of a run with workers = 1; run with "
        f"workers = 1, or let that run finish and use a new data_dir"]
    # the single-process run still works on it, and read nothing twice
    again = run_cli("run", "-c", str(single))
    assert again.code == 0 and again.summary["sources"]["events"]["records"] == 0
    assert_stage_equals(tmp_path / "stage", records)


def test_ctrl_c_on_the_terminal_drains_every_worker_once(tmp_path):
    """SIGINT to the whole foreground process group, as a terminal sends it: the
    workers must see it once (from the supervisor), drain and exit 0."""
    records = make_records(6_000)
    _write_files(tmp_path / "in", records, files=3)
    config = write_config(tmp_path, "workers = 2\n" + base_config(tmp_path)
                          + file_source(tmp_path / "in" / "*.ndjson") + stage_sink(tmp_path))
    log = open(tmp_path / "daemon.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(streamer_cmd("run", "-c", str(config)), stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: len(stage_ids(tmp_path / "stage")) >= 6_000, timeout=60,
                   what="records staged")
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    assert "forcing" not in text, text[-3000:]
    summary = summary_of(text)
    assert summary["workers"] == {"0": {"exit_code": 0, "restarts": 0},
                                  "1": {"exit_code": 0, "restarts": 0}}
    assert_stage_equals(tmp_path / "stage", records)


def test_sighup_reaches_every_worker_and_rebuilds_only_the_changed_sink(tmp_path):
    first = make_records(4_000)
    _write_files(tmp_path / "in", first, files=4)
    body = base_config(tmp_path) + file_source(tmp_path / "in" / "*.ndjson")
    config = write_config(tmp_path, "workers = 2\n" + body + stage_sink(tmp_path))
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: len(stage_ids(tmp_path / "stage")) >= 4_000, timeout=60,
                   what="first records staged")
        # the same file with the stage's columns reversed
        write_config(tmp_path, "workers = 2\n" + body
                     + stage_sink(tmp_path, columns=list(reversed(COLUMNS))))
        daemon.signal(signal.SIGHUP)
        wait_for_log(daemon, r"reload done", count=2)  # one line per worker
        more = make_records(2_000, seed=5, start=4_000)
        _write_files(tmp_path / "in", more, files=4, mode="ab")
        wait_until(lambda: sum(_reversed_ids(tmp_path).values()) >= 2_000, timeout=60,
                   what="records staged with the new columns")
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert "takes effect only after a restart" not in daemon.log  # like for like per worker
    assert summary["sinks"]["stage"]["received"] == summary["sinks"]["stage"]["delivered"]
    assert _reversed_ids(tmp_path) == Counter(r["id"] for r in more)


def _reversed_ids(tmp: Path) -> Counter[int]:
    """Ids in the stage files written with the reversed header."""
    ids: Counter[int] = Counter()
    for _path, (header, *rows) in stage_files(tmp / "stage"):
        if header == list(reversed(COLUMNS)):
            ids.update(int(row[-1]) for row in rows)
    return ids


def test_health_of_a_one_shot_run_counts_a_worker_that_finished_its_share_as_ok(
        tmp_path: Path, td_emulator: TDEmulator) -> None:
    """One file, two workers: the worker without a file finishes at once (exit 0) while
    the other still delivers. /health must not call the run failing (503) for it: a
    probe with a failure threshold would kill a run that is doing its work."""
    records = make_records(20)
    write_ndjson(tmp_path / "in.ndjson", records)
    td_emulator.set_faults(slow=1.0, slow_seconds=4)  # the share with the file waits on TD
    port = free_port()
    config = write_config(tmp_path, "workers = 2\n"
                          + base_config(tmp_path, api=f"127.0.0.1:{port}")
                          + file_source(tmp_path / "in.ndjson", follow=False)
                          + td_sink(td_emulator.url, api="ingest", timeout_s=10))
    daemon = Daemon(config, tmp_path / "run.log", env={"TD_WRITE_KEY": td_emulator.key})
    try:
        wait_until(lambda: "finished" in {w.get("status") for w in
                                          _health_or_none(port)[1].get("workers", {}).values()},
                   timeout=30, what="one worker finished")
        code, body = health(port)
        assert td_emulator.records() == [], "TD answered before the check: the test is void"
        assert code == 200 and body["status"] == "ok", body
        states = sorted(w["status"] for w in body["workers"].values())
        assert states == ["finished", "ok"], body
        assert daemon.wait(60) == 0, daemon.log[-3000:]
    finally:
        daemon.stop()
    assert sorted(r["record"]["id"] for r in td_emulator.records()) == list(range(20))


def _worker_down(port: int, worker: str) -> bool:
    status, body = health(port, timeout=1)  # a Kubernetes probe's default timeout
    return status == 503 and body["workers"][worker]["status"] == "down"


def _health_or_none(port: int) -> tuple[int, dict]:
    try:
        return health(port)
    except OSError:  # not listening yet
        return 0, {}


def test_a_finished_workers_counters_stay_in_the_merged_metrics(
        tmp_path: Path, td_emulator: TDEmulator) -> None:
    """Two files, two workers: the one with only bad lines finishes at once (exit 0)
    while the other still delivers.  Its series must stay in the supervisor's /metrics
    with their last values while the run goes on: before 2026-12-05 they vanished (a
    counter that disappears is a reset in Prometheus' eyes, its increase is lost)."""
    records = make_records(20)
    logs = tmp_path / "logs"
    logs.mkdir()
    write_ndjson(logs / "good.ndjson", records)
    (logs / "bad.ndjson").write_bytes(b"not json\n" * 3)
    td_emulator.set_faults(slow=1.0, slow_seconds=4)  # the share with good lines waits on TD
    port = free_port()
    config = write_config(tmp_path, "workers = 2\n"
                          + base_config(tmp_path, api=f"127.0.0.1:{port}")
                          + file_source(str(logs / "*.ndjson"), follow=False)
                          + td_sink(td_emulator.url, api="ingest", timeout_s=10))
    daemon = Daemon(config, tmp_path / "run.log", env={"TD_WRITE_KEY": td_emulator.key})
    try:
        wait_until(lambda: "finished" in {w.get("status") for w in
                                          _health_or_none(port)[1].get("workers", {}).values()},
                   timeout=30, what="one worker finished")
        metrics = scrape(port)
        assert td_emulator.records() == [], "TD answered before the check: the test is void"
        finished = next(w for w, state in health(port)[1]["workers"].items()
                        if state["status"] == "finished")
        running = str(1 - int(finished))

        def value(name: str, worker: str, **labels: str) -> float | None:
            key = tuple(sorted({**labels, "worker": worker}.items()))
            return metrics.get((name, key))

        assert value("streamer_source_rejected_total", finished, source="events") == 3, metrics
        assert value("streamer_source_records_total", finished, source="events") == 0
        assert value("streamer_sink_received_total", finished, sink="td") == 0
        assert (value("process_cpu_seconds_total", finished) or 0) > 0
        assert value("streamer_source_records_total", running, source="events") == 20
        assert daemon.wait(60) == 0, daemon.log[-3000:]
    finally:
        daemon.stop()
    assert sorted(r["record"]["id"] for r in td_emulator.records()) == list(range(20))
