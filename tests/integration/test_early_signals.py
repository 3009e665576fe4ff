"""SIGINT or SIGTERM in a run's first second (modules importing, the config loading,
sources starting: nothing read yet) stops it as a later one does: no traceback, the
summary line, exit 0. Sent from the moment streamer's own first line runs (the
interpreter's start before it is Python's) -- seen in /proc as SIGTERM caught."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import base_config, file_source, stage_sink, summary_of, write_config
from tests.helpers.process import REPO, streamer_cmd

pytestmark = pytest.mark.timeout(120)
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)
SIGHUP_BIT = 1 << (signal.SIGHUP - 1)  # caught once the run's own handlers are in place
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


def _start(config: Path, log: Path, stdin: int) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(streamer_cmd("run", "-c", str(config), "--no-progress"),
                                cwd=REPO, stdin=stdin, stdout=out, stderr=out)


def _signal_early(procs: list[tuple[subprocess.Popen, signal.Signals, float]]) -> set[int]:
    """Each process gets its signal `delay` after it caught SIGTERM (its first line);
    the pids that had no handler of the run yet (no SIGHUP caught) when it was sent."""
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
                if not _caught(proc.pid) & SIGHUP_BIT:
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
    Python's default ended the process (exit 129: no drain, no summary, no line)."""
    source = tmp_path / "in.ndjson"
    source.write_bytes(b'{"a": 1, "b": "x"}\n' * 50)
    config = write_config(tmp_path, base_config(tmp_path) + file_source(source)
                          + stage_sink(tmp_path))
    log = tmp_path / "run.log"
    proc = _start(config, log, subprocess.DEVNULL)
    try:
        _signal_early([(proc, signal.SIGHUP, delay)])
        deadline = time.monotonic() + 30  # until the run's own handlers are in place
        while not _caught(proc.pid) & SIGHUP_BIT and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
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
