"""Running streamer as a subprocess, as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.fixtures.processes import REPO


def streamer_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamer", *args]


def write_config(directory: Path, text: str, name: str = "streamer.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def summary_of(stderr: str) -> dict[str, Any]:
    """The JSON summary `streamer run` prints as its last stderr line."""
    for line in reversed(stderr.strip().splitlines()):
        if line.startswith("{") and '"sinks"' in line:
            return orjson.loads(line)
    raise AssertionError(f"no summary line in stderr:\n{stderr[-3000:]}")


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        return summary_of(self.stderr)


# the default bounds below are on a loaded host (xdist workers, other suites), not checks
def run_cli(*args: str, stdin: bytes | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> Finished:
    proc = subprocess.run(streamer_cmd(*args), input=stdin, capture_output=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})})
    return Finished(proc.returncode, proc.stdout.decode(errors="replace"),
                    proc.stderr.decode(errors="replace"))


class Daemon:
    """`streamer run` in the background; stderr goes to a file to read later."""

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None,
                 stdin: int | None = subprocess.DEVNULL) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(streamer_cmd("run", "-c", str(config)), cwd=REPO,
                                     stdin=stdin, stdout=self._log, stderr=self._log,
                                     env={**os.environ, **(env or {})})

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def wait(self, timeout: float = 180) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def stop(daemon: Daemon, timeout: float = 180) -> dict[str, Any]:
    """SIGTERM, exit 0, the summary."""
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout) == 0, daemon.log[-3000:]
    return summary_of(daemon.log)
