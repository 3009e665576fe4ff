"""More producers than the process has file descriptors for (`ulimit -n`): the socket
source refuses connections while half of the limit is in use, loudly, so that the
stage file, checkpoints and dead letters still get theirs. Before 2026-12-04 the
connections took every descriptor, the stage file's open failed with EMFILE and the
run stopped (exit 1), losing what the admitted connections had sent."""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import (
    assert_stage_equals,
    base_config,
    make_records,
    ndjson,
    send_in_pieces,
    socket_source,
    stage_sink,
    start,
    stop,
    wait_until,
)
from tests.helpers.csvfiles import stage_ids
from tests.helpers.sockets import closed_by_server

pytestmark = pytest.mark.timeout(120)

DESCRIPTORS = 96  # the daemon's soft RLIMIT_NOFILE during the test
CLIENTS = 150


def test_more_connections_than_descriptors_are_refused_not_a_crash(tmp_path: Path) -> None:
    records = make_records(CLIENTS + 20)
    payloads = ndjson(records)
    daemon, ports = start(tmp_path, base_config(tmp_path)
                          + socket_source("tcp", "newline", extra="max_connections = 1000")
                          + stage_sink(tmp_path), ["tcp"])
    _soft, hard = resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE, (DESCRIPTORS, hard))
    daemon_process = psutil.Process(daemon.proc.pid)
    clients: list[socket.socket] = []
    try:
        for payload in payloads[:CLIENTS]:
            sock = socket.create_connection(("127.0.0.1", ports["tcp"]), timeout=10)
            clients.append(sock)
            with contextlib.suppress(OSError):  # a refused one may be reset already
                sock.sendall(payload + b"\n")
        time.sleep(1.0)  # the refused ones are closed by now
        admitted = [i for i, sock in enumerate(clients) if not closed_by_server(sock)]
        assert 0 < len(admitted) < CLIENTS, len(admitted)
        wait_until(lambda: sum(stage_ids(tmp_path / "stage").values()) >= len(admitted),
                   timeout=30, what="the admitted connections' records staged")
        assert daemon.proc.poll() is None, daemon.log[-3000:]
        assert "open file descriptors" in daemon.log, daemon.log[-3000:]
        for sock in clients:
            sock.close()
        # the server closes its ends: below the ceiling (half the limit) a new
        # connection's descriptor is admitted
        wait_until(lambda: daemon_process.num_fds() < DESCRIPTORS // 2, timeout=30,
                   what="the daemon's descriptors below half the limit")
        # the descriptors are free again: a later producer is served
        send_in_pieces(ports["tcp"], b"".join(p + b"\n" for p in payloads[CLIENTS:]), seed=3)
        wait_until(lambda: sum(stage_ids(tmp_path / "stage").values())
                   >= len(admitted) + len(payloads) - CLIENTS, timeout=30,
                   what="the later records staged")
        summary = stop(daemon)
    finally:
        for sock in clients:
            sock.close()
        daemon.stop()
    expected = [records[i] for i in admitted] + records[CLIENTS:]
    assert_stage_equals(tmp_path / "stage", expected)
    assert summary["sinks"]["stage"]["delivered"] == len(expected)

