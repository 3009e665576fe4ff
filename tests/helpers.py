"""Running streamer as a subprocess, as an operator would."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent


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


def run_cli(*args: str, stdin: bytes | None = None, timeout: float = 120,
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

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def wait_until(predicate, timeout: float = 30, interval: float = 0.05, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def write_ndjson(path: Path, records: Iterable[dict[str, Any]], mode: str = "wb") -> int:
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    with open(path, mode) as fh:
        fh.write(data)
    return len(data)


def read_stage_rows(stage_dir: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of every staged CSV file (every window, every part)."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    for path in sorted(stage_dir.glob("*/part-*.csv")):
        raw = path.read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf"), f"{path} has a BOM"
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            file_header = next(reader)
            assert header is None or file_header == header
            header = file_header
            rows.extend(reader)
    return header or [], rows


def csv_cell(value: Any, null_value: str = "") -> str:
    """What the stage sink writes for a JSON value (see streamer.codec.cell)."""
    if value is None:
        return null_value
    if isinstance(value, bool | dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def expected_rows(records: Iterable[dict[str, Any]], columns: list[str]) -> list[list[str]]:
    return [[csv_cell(r.get(c)) for c in columns] for r in records]


def assert_same_rows(got: list, want: list) -> None:
    """List equality with a short failure message (pytest's diff of 100k rows is slow)."""
    if got == want:
        return
    first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                 min(len(got), len(want)))
    raise AssertionError(f"{len(got)} rows, {len(want)} expected; first difference at "
                         f"{first}: got {got[first:first + 1]}, want {want[first:first + 1]}")


def assert_same_multiset(got: Counter, want: Counter) -> None:
    """Multiset equality with a short failure message."""
    if got == want:
        return
    missing, extra = want - got, got - want
    raise AssertionError(f"{sum(missing.values())} missing (e.g. {list(missing)[:2]}), "
                         f"{sum(extra.values())} extra (e.g. {list(extra)[:2]})")


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """/metrics of a running daemon: {(name, sorted labels): value}; {} while it is
    not listening yet."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        text = opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
