"""One owner per data_dir (issue 17, item 4): a second `streamer run` on a
data_dir in use is refused at once and leaves the first alone; the workers of a
supervisor killed with -9 end by themselves, and a restart loses nothing."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import psutil
import pytest

from tests.helpers import (
    Daemon,
    assert_stage_covers,
    assert_stage_equals,
    base_config,
    file_source,
    make_records,
    run_cli,
    stage_ids,
    stage_sink,
    stop,
    wait_for_log,
    wait_until,
    write_config,
    write_ndjson,
)

pytestmark = pytest.mark.timeout(120)


def refusal(data: Path, pid: int) -> str:
    return (f"data_dir {data} is in use by another streamer process (pid {pid}); one process "
            "per data_dir: stop it first or give this one its own data_dir")


def test_a_second_process_on_the_data_dir_exits_2_and_the_first_delivers_everything(tmp_path):
    source = tmp_path / "in.ndjson"
    first = make_records(5_000)
    write_ndjson(source, first)
    config = write_config(tmp_path, base_config(tmp_path) + file_source(source)
                          + stage_sink(tmp_path))
    data, stage = tmp_path / "data", tmp_path / "stage"
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: len(stage_ids(stage)) == 5_000, timeout=60, what="first staged")
        more = make_records(5_000, seed=3, start=5_000)
        write_ndjson(source, more[:2_500], mode="ab")  # in the first's open stage files now
        for command in ("run", "run"):  # a daemon and a one-shot alike; twice: nothing left
            second = run_cli(command, "-c", str(config), timeout=30)
            assert second.code == 2, second.stderr
            assert second.stderr.strip().splitlines() == [refusal(data, daemon.proc.pid)]
        # `check` reads the config only: it does not need the data_dir
        assert run_cli("check", "-c", str(config), timeout=30).code == 0
        write_ndjson(source, more[2_500:], mode="ab")
        wait_until(lambda: len(stage_ids(stage)) == 10_000, timeout=60, what="all staged")
        assert (data / "lock").read_text() == f"{daemon.proc.pid}\n"
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert summary["sinks"]["stage"]["delivered"] == 10_000
    assert_stage_equals(stage, first + more)  # every record once: none lost, none repeated


def test_workers_end_with_a_killed_supervisor_and_a_restart_loses_nothing(tmp_path):
    records = make_records(20_000)
    (tmp_path / "in").mkdir()
    for index in range(4):
        write_ndjson(tmp_path / "in" / f"part-{index}.ndjson", records[index::4])
    config = write_config(tmp_path, "workers = 2\n" + base_config(tmp_path)
                          + file_source(tmp_path / "in" / "*.ndjson") + stage_sink(tmp_path))
    stage = tmp_path / "stage"
    daemon = Daemon(config, tmp_path / "daemon.log")
    workers: list[psutil.Process] = []
    try:
        wait_until(lambda: len(stage_ids(stage)) >= 5_000, timeout=60, what="records staged")
        supervisor = psutil.Process(daemon.proc.pid)
        forked = supervisor.children()
        assert len(forked) == 2
        forked[0].kill()  # its replacement is a fresh interpreter (`--shard`): both kinds
        wait_for_log(daemon, r"worker \d exited with signal 9; restarting it")
        wait_until(lambda: any("--shard" in w.cmdline() for w in supervisor.children()),
                   what="a restarted worker")
        workers = supervisor.children()
        assert len(workers) == 2 and sorted("--shard" in w.cmdline() for w in workers) == [
            False, True]
        daemon.kill()  # kill -9 of the supervisor
        _, alive = psutil.wait_procs(workers, timeout=15)  # they drain and exit
        assert not alive, [w.cmdline() for w in alive]
    finally:
        daemon.stop()
        for worker in workers:  # orphans must not outlive a failed test
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
    more = make_records(5_000, seed=5, start=20_000)
    write_ndjson(tmp_path / "in" / "part-0.ndjson", more, mode="ab")
    again = Daemon(config, tmp_path / "again.log")  # the kernel released the lock
    try:
        wait_until(lambda: len(stage_ids(stage)) == 25_000, timeout=90, what="all staged")
        again.signal(signal.SIGTERM)
        assert again.wait(60) == 0, again.log[-3000:]
    finally:
        again.stop()
    assert "in use by another streamer process" not in again.log
    assert_stage_covers(stage, records + more)
