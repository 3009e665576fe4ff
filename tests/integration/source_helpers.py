"""Shared pieces of the socket and Kafka source tests: records, configs, stage reads."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.gen import FIELDS, iter_records
from tests.helpers import Daemon, assert_same_rows, expected_rows, read_stage_rows

COLUMNS = ["id", *FIELDS]


def make_records(n: int, seed: int = 7, start: int = 0, **extra: Any) -> list[dict[str, Any]]:
    """Realistic records (bench.gen), each with a unique integer `id` first."""
    return [{"id": start + i, **r, **extra} for i, r in enumerate(iter_records(n, seed))]


def ndjson(records: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


def stage_sink(tmp: Path, *, columns: list[str] = COLUMNS, extra: str = "") -> str:
    """A local stage sink that closes (and so acknowledges) files every 0.5 s."""
    return f"""
[sinks.stage]
type = "stage"
url = "file://{tmp}/stage/"
columns = {json.dumps(columns)}
max_file_age_s = 0.5
fsync = false
{extra}
"""


def base_config(tmp: Path, instance_id: str = "0", data: str = "data") -> str:
    return f"""
data_dir = "{tmp}/{data}"
instance_id = "{instance_id}"
checkpoint_interval_s = 0.5
shutdown_timeout_s = 30
[api]
listen = ""
"""


def count_stage_rows(stage: Path) -> int:
    """Rows in completed stage files (cheap: generated records hold no newlines)."""
    total = 0
    for path in stage.glob("*/part-*.csv"):
        total += path.read_bytes().count(b"\n") - 1
    return total


def stage_ids(stage: Path) -> Counter[int]:
    header, rows = read_stage_rows(stage)
    if not rows:
        return Counter()
    assert header == COLUMNS
    return Counter(int(r[0]) for r in rows)


def assert_stage_equals(stage: Path, records: list[dict[str, Any]]) -> None:
    """Every record exactly once, every cell as the stage sink writes it."""
    header, rows = read_stage_rows(stage)
    assert header == COLUMNS
    assert len(rows) == len(records)
    assert_same_rows(sorted(rows, key=lambda r: int(r[0])),
                     expected_rows(sorted(records, key=lambda r: r["id"]), COLUMNS))


def assert_stage_covers(stage: Path, records: list[dict[str, Any]]) -> Counter[int]:
    """Every record at least once, duplicates identical; returns the id counts."""
    header, rows = read_stage_rows(stage)
    assert header == COLUMNS
    by_id = {r["id"]: r for r in records}
    unique = {tuple(row) for row in rows}
    assert sorted(unique, key=lambda r: int(r[0])) == [
        tuple(row) for row in expected_rows([by_id[i] for i in sorted(by_id)], COLUMNS)]
    return Counter(int(r[0]) for r in rows)


def wait_for_log(daemon: Daemon, pattern: str, timeout: float = 30,
                 count: int = 1) -> list[re.Match[str]]:
    """Wait until `pattern` matched `count` times in the daemon's log."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        matches = list(regex.finditer(daemon.log))
        if len(matches) >= count:
            return matches
        if daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited ({daemon.proc.returncode}):\n{daemon.log[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} in the log after {timeout}s:\n"
                                 f"{daemon.log[-3000:]}")
        time.sleep(0.05)


def read_dead_letters(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]
