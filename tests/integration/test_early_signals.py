"""SIGINT or SIGTERM in a run's first second (modules importing, the config loading,
sources starting: nothing read yet) stops it as a later one does: no traceback, the
summary line, exit 0. Sent from the moment streamer's own first line runs (the
interpreter's start before it is Python's) -- seen in /proc as SIGTERM caught."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import (
    Daemon,
    assert_stage_covers,
    base_config,
    file_source,
    make_records,
    stage_files,
    stage_ids,
    stage_sink,
    stop,
    summary_of,
    wait_for_log,
    wait_until,
    write_config,
    write_ndjson,
)
from tests.helpers.process import REPO, streamer_cmd

pytestmark = pytest.mark.timeout(120)
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)
# (signal, seconds after streamer's first line): right away, while modules import,
# while the config loads and the sources start
MOMENTS = [(signal.SIGINT, 0.0), (signal.SIGTERM, 0.0), (signal.SIGTERM, 0.15),
           (signal.SIGINT, 0.4), (signal.SIGTERM, 1.0)]


def _caught(pid: int) -> int:
    """The signals `pid` has handlers for (a bit mask; 0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return int(caught.split()[1], 16)


def _has_event_loop(pid: int) -> bool:
    """An event loop runs in `pid` (its self-pipe is a socket pair; before the loop,
    streamer opens no socket): the run's handlers may be in place."""
    try:
        links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:  # gone, or an fd closed while listed
        return True
    return any(link.startswith("socket:") for link in links)


def _start(config: Path, log: Path, stdin: int) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(streamer_cmd("run", "-c", str(config), "--no-progress"),
                                cwd=REPO, stdin=stdin, stdout=out, stderr=out)


def _signal_early(procs: list[tuple[subprocess.Popen, signal.Signals, float]]) -> set[int]:
    """Each process gets its signal `delay` after it caught SIGTERM (its first line);
    the pids that had no handler of the run yet (no event loop) when it was sent."""
    held_at: dict[int, float] = {}
    before_the_run: set[int] = set()
    pending = list(procs)
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        for item in list(pending):
            proc, signum, delay = item
            if proc.pid not in held_at and _caught(proc.pid) & SIGTERM_BIT:
                held_at[proc.pid] = time.monotonic()
            if proc.pid in held_at and time.monotonic() >= held_at[proc.pid] + delay:
                if not _has_event_loop(proc.pid):
                    before_the_run.add(proc.pid)
                proc.send_signal(signum)
                pending.remove(item)
        time.sleep(0.001)
    assert not pending, "a process never reached its first line"
    return before_the_run


@pytest.mark.parametrize("mode", ["daemon", "one-shot", "workers"])
def test_a_signal_in_the_first_second_is_a_clean_stop(tmp_path: Path, mode: str) -> None:
    source = tmp_path / "in.ndjson"
    source.write_bytes(b'{"a": 1, "b": "x"}\n' * 50)
    runs = []
    # two workers: the supervisor holds it, then signals each worker once it started
    moments = MOMENTS[1:4:2] if mode == "workers" else MOMENTS
    for i, (signum, delay) in enumerate(moments):
        top = base_config(tmp_path, data=f"data{i}", workers=2 if mode == "workers" else 1)
        if mode != "one-shot":
            text = top + file_source(source) + stage_sink(tmp_path, name=f"stage{i}")
            stdin = subprocess.DEVNULL
        else:  # finite, kept open: it would end by itself only at the end of stdin
            text = (top + "[sources.in]\ntype = \"stdin\"\n"
                    + stage_sink(tmp_path, name=f"stage{i}"))
            stdin = subprocess.PIPE
        config = write_config(tmp_path, text, name=f"run{i}.toml")
        log = tmp_path / f"run{i}.log"
        runs.append((_start(config, log, stdin), signum, delay, log))
    try:
        before_the_run = _signal_early([(proc, signum, delay) for proc, signum, delay, _ in runs])
        codes = [proc.wait(60) for proc, *_ in runs]
    finally:
        for proc, *_ in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            if proc.stdin is not None:
                proc.stdin.close()
    # right after the first line, the run's handlers cannot be in place yet
    assert {proc.pid for proc, _, delay, _ in runs if delay == 0.0} <= before_the_run
    for (_, signum, delay, log), code in zip(runs, codes, strict=True):
        text = log.read_text()
        where = f"{signum.name} {delay}s after start:\n{text[-2000:]}"
        assert code == 0, where
        assert "Traceback" not in text and "KeyboardInterrupt" not in text, where
        assert summary_of(text)["exit_code"] == 0, where
        assert f"{signum.name} received: stopping" in text, where


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_a_sighup_before_the_run_can_reload_does_not_end_it(tmp_path: Path, delay: float) -> None:
    """`kill -HUP` (a logrotate postrotate, a deploy script) right after a (re)start:
    Python's default ended the process (exit 129: no drain, no summary, no line).
    It is held, and served as one reload once the pipeline runs (nothing changed)."""
    source = tmp_path / "in.ndjson"
    source.write_bytes(b'{"a": 1, "b": "x"}\n' * 50)
    config = write_config(tmp_path, base_config(tmp_path) + file_source(source)
                          + stage_sink(tmp_path))
    log = tmp_path / "run.log"
    proc = _start(config, log, subprocess.DEVNULL)
    try:
        _signal_early([(proc, signal.SIGHUP, delay)])
        deadline = time.monotonic() + 30  # until the held SIGHUP was served
        while "reload: no source or sink changed" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert code == 0, text
    assert summary_of(text)["sources"]["events"]["records"] in range(0, 51), text


@pytest.mark.parametrize("workers", [1, 2])
def test_a_sighup_while_starting_is_served_once_the_run_can_reload(tmp_path: Path,
                                                                   workers: int) -> None:
    """The config edited and SIGHUP sent right after streamer read it (building the
    pipeline: its "feeds no sink" warning), before the run's reload handler is in
    place or while the pipeline starts: the edit (a new source) is applied once the
    pipeline runs, not at the next SIGHUP."""
    first, late = tmp_path / "first.ndjson", tmp_path / "late.ndjson"
    idle = tmp_path / "idle.ndjson"  # feeds no sink: the warning that the config was read
    idle.write_text("")
    rows = {"first": [{"id": i, "name": f"first-{i}"} for i in range(20)],
            "late": [{"id": 100 + i, "name": f"late-{i}"} for i in range(20)]}
    first.write_text("".join(json.dumps(r) + "\n" for r in rows["first"]))
    late.write_text("".join(json.dumps(r) + "\n" for r in rows["late"]))

    def config(sources: list[str]) -> Path:
        return write_config(tmp_path, base_config(tmp_path, workers=workers)
                            + file_source(idle, name="idle")
                            + "".join(file_source(tmp_path / f"{name}.ndjson", name=name)
                                      for name in sources)
                            + stage_sink(tmp_path, columns=["id", "name"], max_file_age_s=0.2,
                                         inputs=sources))

    path = config(["first"])
    log = tmp_path / "run.log"
    proc = _start(path, log, subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30  # the config is read: the pipeline is being built
        while "feeds no sink" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.001)
        config(["first", "late"])
        proc.send_signal(signal.SIGHUP)
        wanted = {(str(r["id"]), r["name"]) for r in rows["first"] + rows["late"]}

        def staged() -> set[tuple[str, ...]]:
            return {tuple(row) for _path, (_header, *body) in
                    stage_files(tmp_path / "stage") for row in body}

        deadline = time.monotonic() + 30
        while staged() != wanted and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        assert staged() == wanted, log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text, text


def test_a_sighup_forwarded_to_a_worker_in_its_first_instant_is_served_not_fatal(
        tmp_path: Path) -> None:
    """workers = 2: a worker the supervisor restarts is a fresh interpreter; a SIGHUP
    the supervisor forwards before that interpreter reached streamer's first line
    killed it (signal 1) and it was restarted again. Now the worker starts with the
    held signals blocked (inherited through exec) until its first line holds them:
    the reload is served once its pipeline runs, and the worker stays the same."""
    source = tmp_path / "in"
    records = make_records(2_000)
    source.mkdir()
    for index in range(4):
        write_ndjson(source / f"part-{index}.ndjson", records[index::4])
    config = write_config(tmp_path, base_config(tmp_path, workers=2)
                          + file_source(source / "*.ndjson") + stage_sink(tmp_path))
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: len(stage_ids(tmp_path / "stage")) >= 2_000, timeout=60,
                   what="first records staged")
        supervisor = psutil.Process(daemon.proc.pid)
        first = supervisor.children()
        first[0].kill()
        deadline = time.monotonic() + 30
        fresh: list[psutil.Process] = []
        while not fresh and time.monotonic() < deadline:  # HUP as soon as it exists
            fresh = [w for w in supervisor.children() if w.pid not in {p.pid for p in first}]
            time.sleep(0.0005)
        assert fresh, daemon.log[-3000:]
        daemon.signal(signal.SIGHUP)
        assert not (_caught(fresh[0].pid) & SIGTERM_BIT)  # before its first line
        wait_for_log(daemon, r"streamer.reload: reload: ", count=2)  # each worker once
        more = make_records(1_000, seed=3, start=2_000)
        for index in range(4):
            write_ndjson(source / f"part-{index}.ndjson", more[index::4], mode="ab")
        wait_until(lambda: len(stage_ids(tmp_path / "stage")) >= 3_000, timeout=60,
                   what="appended records staged")
        assert fresh[0].is_running() and fresh[0] in supervisor.children()
        summary = stop(daemon)
    finally:
        daemon.stop()
    text = daemon.log
    assert "exited with signal 1;" not in text, text[-3000:]
    assert len(re.findall(r"worker \d exited with", text)) == 1  # the kill -9 only
    assert summary["exit_code"] == 0
    assert_stage_covers(tmp_path / "stage", records + more)
