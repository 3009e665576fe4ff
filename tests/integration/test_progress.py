"""The progress line of finite runs: drawn on a terminal (a pseudo-terminal as
stderr here), never on a pipe, never for daemons, never with --no-progress;
log lines and the final JSON summary line stay intact."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import orjson

from streamer.observability.progress import human_bytes
from tests.helpers import (
    REPO,
    assert_stage_equals,
    base_config,
    file_source,
    make_records,
    run_cli,
    stage_sink,
    streamer_cmd,
    write_config,
    write_ndjson,
)

STATUS = re.compile(r"streamer: ([\d,]+) records, ([\d,]+) rec/s, (\S+ \S+) of (\S+ \S+) read "
                    r"\((\d+\.\d)%\), ETA (\d+:\d\d|--)(, input done, draining sinks)?")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: ")
RECORDS = 30_000


def run_on_pty(args: list[str], stop_when: str | None = None,
               timeout: float = 90) -> tuple[int, str]:
    """Run streamer with a pseudo-terminal (200 columns) as its stderr; all it wrote
    there, raw.  With `stop_when`, SIGTERM once that text has appeared."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen(streamer_cmd(*args), cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    signalled = False
    try:
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"streamer did not finish:\n{b''.join(chunks)[-3000:]!r}")
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave end is closed, the process is gone
                    break
                if not data:
                    break
                chunks.append(data)
            if stop_when and not signalled and stop_when.encode() in b"".join(chunks):
                proc.send_signal(signal.SIGTERM)
                signalled = True
        return proc.wait(30), b"".join(chunks).decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)


def visible_lines(raw: str) -> list[str]:
    """What the terminal shows at the end: per line, the text after the last
    carriage return (each status redraw starts with one), erase codes removed."""
    lines = []
    for line in raw.split("\n"):
        shown = line.rstrip("\r").rsplit("\r", 1)[-1].replace("\x1b[K", "")
        if shown:
            lines.append(shown)
    return lines


def finite_config(tmp: Path, follow: bool = False,
                  count: int = RECORDS) -> tuple[Path, list[dict], int]:
    records = make_records(count)
    (tmp / "in").mkdir()
    size = write_ndjson(tmp / "in" / "a.ndjson", records[:count // 2])
    size += write_ndjson(tmp / "in" / "b.ndjson", records[count // 2:])
    config = write_config(tmp, base_config(tmp)
                          + file_source(tmp / "in" / "*.ndjson", name="files", follow=follow,
                                        poll_interval_ms=None)
                          + stage_sink(tmp))
    return config, records, size


def test_terminal_shows_progress_and_summary_stays_last(tmp_path):
    config, records, size = finite_config(tmp_path)
    code, raw = run_on_pty(["run", "-c", str(config)])
    assert code == 0, raw[-3000:]
    statuses = list(STATUS.finditer(raw))
    assert statuses, f"no status line:\n{raw[-3000:]!r}"
    for match in statuses:
        assert match.group(4) == human_bytes(size)  # the total is the files' size
        assert 0.0 <= float(match.group(5)) <= 100.0
        assert 0 <= int(match.group(1).replace(",", "")) <= RECORDS
    # the last status was cleared: after it only erase codes, then the summary line
    tail = raw[statuses[-1].end():]
    assert tail.startswith("\x1b[K\r\x1b[K"), repr(tail[:200])
    lines = visible_lines(raw)
    summary = orjson.loads(lines[-1])
    assert summary["exit_code"] == 0
    assert summary["sources"]["files"]["records"] == RECORDS
    assert summary["sources"]["files"]["bytes"] == size
    assert summary["sinks"]["stage"]["delivered"] == RECORDS
    # every other line is a whole log line: no status text glued to one
    assert len(lines) > 2
    for line in lines[:-1]:
        assert LOG_LINE.match(line), repr(line)
    assert any("source files finished" in line for line in lines)
    assert_stage_equals(tmp_path / "stage", records)


def test_pipe_and_no_progress_and_daemon_mode_draw_nothing(tmp_path):
    config, records, _ = finite_config(tmp_path)
    piped = run_cli("run", "-c", str(config))  # stderr is a pipe
    assert piped.code == 0, piped.stderr[-3000:]
    assert "rec/s" not in piped.stderr and "\x1b" not in piped.stderr and "\r" not in piped.stderr
    assert piped.summary["sinks"]["stage"]["delivered"] == RECORDS
    assert_stage_equals(tmp_path / "stage", records)

    again = tmp_path / "again"
    again.mkdir()
    config, _, _ = finite_config(again, count=5000)
    code, raw = run_on_pty(["run", "-c", str(config), "--no-progress"])
    assert code == 0, raw[-3000:]
    assert "rec/s" not in raw and "\x1b" not in raw
    assert orjson.loads(visible_lines(raw)[-1])["sinks"]["stage"]["delivered"] == 5000

    daemon = tmp_path / "daemon"
    daemon.mkdir()
    config, _, _ = finite_config(daemon, follow=True, count=5000)
    code, raw = run_on_pty(["run", "-c", str(config)], stop_when="reading ")
    assert code == 0, raw[-3000:]
    assert "rec/s" not in raw and "\x1b" not in raw
    assert "SIGTERM received" in raw
    assert orjson.loads(visible_lines(raw)[-1])["exit_code"] == 0
