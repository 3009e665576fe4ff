"""Standard streams that are closed, full or read by nobody: `streamer run >&-` under a
supervisor that closes stdout, `... 2>&1 | head -1`, `streamer check | head -1`,
`streamer columns FILE > /dev/full`.  A run's exit code is the run's (its data was
delivered); a command whose output is its result fails with one line, no traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.fixtures.processes import REPO
from tests.helpers import (
    base_config,
    file_source,
    stage_files,
    stage_sink,
    streamer_cmd,
    write_config,
    write_ndjson,
)

RECORDS = [{"id": i, "k": f"key-{i}"} for i in range(50)]


def one_shot(tmp: Path) -> Path:
    source = tmp / "in.ndjson"
    write_ndjson(source, RECORDS)
    return write_config(tmp, base_config(tmp) + file_source(source, follow=False)
                        + stage_sink(tmp, columns=["id", "k"]))


def started(args: list[str], *, stdout: int | None, stderr: int | None,
            close: tuple[int, ...] = ()) -> tuple[int, str]:
    """Exit code and stderr of `streamer ARGS` with the given streams (a file
    descriptor, or closed when in `close`)."""
    closes = " ".join(f"{fd}>&-" for fd in close)
    cmd = " ".join(f"'{a}'" for a in streamer_cmd(*args))
    proc = subprocess.run(["sh", "-c", f"exec {cmd} {closes}"], cwd=REPO, stdout=stdout,
                          stderr=stderr if stderr is not None else subprocess.PIPE,
                          timeout=120, env=os.environ)
    return proc.returncode, (proc.stderr or b"").decode(errors="replace")


def staged_ids(tmp: Path) -> list[int]:
    return sorted(int(row[0]) for _path, (_header, *rows) in stage_files(tmp / "stage")
                  for row in rows)


@pytest.mark.parametrize("stream", ["stdout closed", "stderr closed", "stderr unread"])
def test_a_run_that_delivered_exits_0_whatever_its_streams(tmp_path, stream):
    config = one_shot(tmp_path)
    args = ["run", "-c", str(config)]
    if stream == "stdout closed":
        code, err = started(args, stdout=None, stderr=None, close=(1,))
        assert "Traceback" not in err, err
        assert '"exit_code":0' in err.strip().splitlines()[-1], err
    elif stream == "stderr closed":
        code, _ = started(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          close=(2,))
    else:  # `2>&1 | head -1` once head has gone: every write to stderr is EPIPE
        read, write = os.pipe()
        os.close(read)
        try:
            code, _ = started(args, stdout=subprocess.DEVNULL, stderr=write)
        finally:
            os.close(write)
    assert code == 0
    assert staged_ids(tmp_path) == [r["id"] for r in RECORDS]


@pytest.mark.parametrize(("output", "command"), [
    ("closed", "check --log-format json"),
    ("closed", "columns"),  # print() to None writes nothing, silently
    ("full", "columns"), ("full", "--version"), ("unread", "check")])
def test_output_that_cannot_be_written_is_one_line_and_exit_1(tmp_path, output, command):
    config = one_shot(tmp_path)
    args = {"check": ["check", "-c", str(config)],
            "check --log-format json": ["check", "-c", str(config), "--log-format", "json"],
            "columns": ["columns", str(config.parent / "in.ndjson")],
            "--version": ["--version"]}[command]
    if output == "closed":
        code, err = started(args, stdout=None, stderr=None, close=(1,))
    elif output == "full":
        with open("/dev/full", "wb") as full:
            code, err = started(args, stdout=full.fileno(), stderr=None)
    else:
        read, write = os.pipe()
        os.close(read)
        try:
            code, err = started(args, stdout=write, stderr=None)
        finally:
            os.close(write)
    assert code == 1, err
    assert "Traceback" not in err, err
    if output == "unread":  # a reader that went away (`| head -1`) is not news
        assert err == "", err
    elif "json" in command:  # every stderr line a JSON object
        line = orjson.loads(err.strip().splitlines()[-1])
        assert line["message"] == "streamer: cannot write to stdout: [Errno 9] stdout is closed"
    else:
        assert err.strip().splitlines()[-1].startswith("streamer: cannot write to stdout: "), err
