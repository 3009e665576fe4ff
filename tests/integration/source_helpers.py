"""Shared pieces of the source and sink tests: records, configs, stage reads, producers."""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from bench.gen import FIELDS, iter_records
from tests.fixtures.kafka import CONSUMER_TIMING, KafkaBroker
from tests.fixtures.td import TDEmulator
from tests.helpers import (
    Daemon,
    assert_same_rows,
    expected_rows,
    read_stage_rows,
    summary_of,
    write_config,
)

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


def base_config(tmp: Path, instance_id: str = "0", data: str = "data", api: str = "") -> str:
    """Top-level settings; `api` is the /metrics listen address ("" disables it)."""
    return f"""
data_dir = "{tmp}/{data}"
instance_id = "{instance_id}"
checkpoint_interval_s = 0.5
shutdown_timeout_s = 30
[api]
listen = "{api}"
"""


def file_source(path: Path, *, name: str = "events", follow: bool = True, extra: str = "") -> str:
    """A file source reading `path` (polled every 50 ms)."""
    return f"""
[sources.{name}]
type = "file"
paths = ["{path}"]
follow = {str(follow).lower()}
poll_interval_ms = 50
{extra}
"""


def td_sink(endpoint: str, *, api: str = "postback", name: str = "td", timeout_s: float = 5,
            retry: str = "{ initial_backoff_ms = 5, max_backoff_ms = 100 }",
            database: str = "test_db", table: str = "events", extra: str = "") -> str:
    """A td sink posting to `endpoint` (the key comes from $TD_WRITE_KEY)."""
    return f"""
[sinks.{name}]
type = "td"
api = "{api}"
endpoint = "{endpoint}"
database = "{database}"
table = "{table}"
write_key = "${{TD_WRITE_KEY}}"
timeout_s = {timeout_s}
retry = {retry}
{extra}
"""


def kafka_source(broker: KafkaBroker, group: str, extra: str = "", topic: str = "events") -> str:
    """A Kafka source `kafka` reading `topic` with the fixture's fast group timing."""
    timing = "\n".join(f"{k} = {v}" for k, v in CONSUMER_TIMING.items())
    return f"""
[sources.kafka]
type = "kafka"
bootstrap_servers = "{broker.bootstrap}"
topics = ["{topic}"]
group_id = "{group}"
{timing}
{extra}
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


def multiset(records: Iterable[dict[str, Any]]) -> Counter[bytes]:
    """Records as a multiset of their canonical JSON (key order ignored)."""
    return Counter(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


def stored(emu: TDEmulator, **filters: str) -> list[dict[str, Any]]:
    """The records the TD emulator accepted, in acceptance order."""
    return [r["record"] for r in emu.records(**filters)]


def read_dead_letters(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


LISTENING = r"socket source {name} listening on 127\.0\.0\.1:(\d+)"


def socket_source(name: str, framing: str, *, port: int = 0, extra: str = "") -> str:
    """A socket source on 127.0.0.1 (port 0: a free one, see `start`)."""
    return f"""
[sources.{name}]
type = "socket"
listen = "127.0.0.1:{port}"
framing = "{framing}"
{extra}
"""


def start(tmp: Path, text: str, names: list[str], log: str = "daemon.log"
          ) -> tuple[Daemon, dict[str, int]]:
    """Start the daemon; the port each named socket source listens on."""
    daemon = Daemon(write_config(tmp, text), tmp / log)
    ports = {name: int(wait_for_log(daemon, LISTENING.format(name=name))[-1].group(1))
             for name in names}
    return daemon, ports


def stop(daemon: Daemon) -> dict:
    """SIGTERM, exit 0, the summary."""
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(60) == 0, daemon.log[-3000:]
    return summary_of(daemon.log)


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def encode(payloads: list[bytes], framing: str) -> bytes:
    if framing == "newline":
        return b"".join(p + b"\n" for p in payloads)
    return b"".join(map(frame, payloads))


def send_in_pieces(port: int, data: bytes, seed: int) -> None:
    """Send `data` in random-sized pieces (frames split anywhere), then close."""
    rng = random.Random(seed)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        pos = 0
        while pos < len(data):
            step = rng.choice((1, 7, 100, 1500, 20_000, 70_000))
            sock.sendall(data[pos:pos + step])
            pos += step
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):  # until the server closes its side
            pass
