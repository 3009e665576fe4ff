"""What a stdin source may be given besides a pipe or a file: /dev/null (a cron
job, a service whose stdin is not set) or another character device, a closed
descriptor 0, a socket.  Each is read to its end: an empty input is a finished
run with 0 records, exit 0, no traceback."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import orjson
import pytest

from tests.fixtures.processes import REPO
from tests.helpers import (
    base_config,
    make_records,
    read_stage_rows,
    stage_sink,
    toml_keys,
    write_config,
)
from tests.helpers.process import streamer_cmd

pytestmark = pytest.mark.timeout(60)


def stdin_config(tmp_path: Path) -> Path:
    return write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                        + "[sources.in]\n" + toml_keys(type="stdin")
                        + stage_sink(tmp_path, max_file_age_s=None))


def run_with_stdin(config: Path, stdin: int | None, close_fds: bool = True,
                   pass_fds: tuple[int, ...] = ()) -> tuple[int, str]:
    proc = subprocess.run(streamer_cmd("run", "-c", str(config)), cwd=REPO, stdin=stdin,
                          capture_output=True, timeout=45, pass_fds=pass_fds,
                          close_fds=close_fds)
    return proc.returncode, proc.stderr.decode(errors="replace")


def summary_of(stderr: str) -> dict:
    return orjson.loads(stderr.strip().splitlines()[-1])


def test_dev_null_is_an_empty_input(tmp_path: Path) -> None:
    """uvloop aborted the process (SIGABRT, exit 134, no summary) on a character
    device given as a pipe."""
    with open("/dev/null", "rb") as null:
        code, stderr = run_with_stdin(stdin_config(tmp_path), null.fileno())
    assert code == 0, stderr
    assert summary_of(stderr)["sources"]["in"] == {"records": 0, "bytes": 0, "rejected": 0}
    assert "Traceback" not in stderr


def test_a_closed_stdin_is_an_empty_input_said_once(tmp_path: Path) -> None:
    """`streamer run <&-`: a traceback (sys.stdin is None) before."""
    code, stderr = run_closed(stdin_config(tmp_path))
    assert code == 0, stderr
    assert summary_of(stderr)["sources"]["in"] == {"records": 0, "bytes": 0, "rejected": 0}
    assert "Traceback" not in stderr
    assert "source in: stdin is closed" in stderr, stderr


def run_closed(config: Path) -> tuple[int, str]:
    proc = subprocess.run(["sh", "-c", 'exec "$@" <&-', "sh",
                           *streamer_cmd("run", "-c", str(config))],
                          cwd=REPO, capture_output=True, timeout=45)
    return proc.returncode, proc.stderr.decode(errors="replace")


def test_a_socket_as_stdin_is_read_to_its_end(tmp_path: Path) -> None:
    records = make_records(300)
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    ours, theirs = socket.socketpair()
    sender = threading.Thread(target=lambda: (ours.sendall(data), ours.close()))
    sender.start()
    try:
        code, stderr = run_with_stdin(stdin_config(tmp_path), theirs.fileno())
    finally:
        theirs.close()
        sender.join()
    assert code == 0, stderr
    assert summary_of(stderr)["sources"]["in"]["records"] == 300
    _, rows = read_stage_rows(tmp_path / "stage")
    assert sorted(int(r[0]) for r in rows) == [r["id"] for r in records]
