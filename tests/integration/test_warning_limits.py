"""Repeated warnings go through the one log handler that limits them
(streamer/observability/log_limit.py), per component: a failing TD sink and a
flood of refused connections show their first 10 lines, then one count line,
and two failing sinks do not hide each other's lines."""

from __future__ import annotations

import contextlib
import re
import socket
from pathlib import Path

import pytest

from bench.gen import iter_records
from tests.fixtures.td import TDEmulator
from tests.helpers import (
    base_config,
    file_source,
    run_cli,
    socket_source,
    stage_sink,
    start,
    stop,
    td_sink,
    write_config,
    write_ndjson,
)

pytestmark = pytest.mark.timeout(120)

BURST = 10  # RateLimitHandler's default
COUNT_LINE = re.compile(r" -- repeated (\d+) times in the last 10s \(suppressed\)$")


def warnings_of(log: str, start_of_message: str) -> tuple[list[str], list[int]]:
    """The lines whose message starts so, shown in full; the counts of the
    count lines among them."""
    lines = [line for line in log.splitlines() if f": {start_of_message}" in line]
    counts = [int(m.group(1)) for line in lines if (m := COUNT_LINE.search(line))]
    return [line for line in lines if not COUNT_LINE.search(line)], counts


def test_each_failing_td_sink_shows_its_own_first_warnings_then_a_count(
        tmp_path: Path, td_emulator: TDEmulator) -> None:
    write_ndjson(tmp_path / "in.ndjson", iter_records(100, 3))
    td_emulator.set_faults(force_status=503)
    retry = {"initial_backoff_ms": 5, "max_backoff_ms": 20, "max_elapsed_s": 1}
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(tmp_path / "in.ndjson", follow=False)
                          + td_sink(td_emulator.url, name="td", api="ingest", retry=retry)
                          + td_sink(td_emulator.url, name="td2", api="ingest", retry=retry))
    result = run_cli("run", "-c", str(config), env={"TD_WRITE_KEY": td_emulator.key})
    assert result.code == 0, result.stderr[-3000:]
    for sink in ("td", "td2"):
        failures = result.summary["sinks"][sink]["requests_5xx"]
        shown, counts = warnings_of(result.stderr,
                                    f"td sink {sink}: POST /test_db/events failed: HTTP 503")
        assert failures > BURST + 1
        assert len(shown) == BURST and all("retried in" in line for line in shown)
        # the last failure of each unit gives up (max_elapsed_s) instead of warning
        assert len(counts) == 1 and BURST + counts[0] <= failures
        assert result.summary["sinks"][sink]["dead_lettered"] == 100


def test_a_flood_of_refused_connections_shows_ten_lines_and_a_count(tmp_path: Path) -> None:
    over = 25
    daemon, ports = start(tmp_path, base_config(tmp_path)
                          + socket_source("tcp", "newline", extra="max_connections = 1")
                          + stage_sink(tmp_path), ["tcp"])
    try:
        with socket.create_connection(("127.0.0.1", ports["tcp"]), timeout=10) as held:
            held.sendall(b'{"id": 1}\n')
            for _ in range(over):
                with socket.create_connection(("127.0.0.1", ports["tcp"]), timeout=10) as sock, \
                        contextlib.suppress(ConnectionResetError):
                    assert sock.recv(16) == b""  # closed by the server
            summary = stop(daemon)
    finally:
        daemon.stop()
    shown, counts = warnings_of(daemon.log, "socket source tcp: refusing connection from")
    assert len(shown) == BURST and counts == [over - BURST]
    assert shown[-1].endswith(f"(1 open, max_connections 1; {BURST} refused so far)")
    assert summary["sources"]["tcp"]["records"] == 1  # the held connection was read
