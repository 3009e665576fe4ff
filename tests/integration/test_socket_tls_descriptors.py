"""A flood of TLS connections that never finish their handshake (plain TCP that
sends nothing) is held to the socket source's descriptor ceiling (half of
`ulimit -n`) and to `max_connections` like made connections are: before
2026-12-05 a connection was counted only once its handshake was done, so half-open
handshakes took every descriptor and the stage file's open failed (EMFILE), the
run stopped and what the admitted client had sent was lost."""

from __future__ import annotations

import contextlib
import resource
import socket
import ssl
from pathlib import Path

import pytest

from tests.helpers import (
    assert_stage_equals,
    base_config,
    free_port,
    make_records,
    ndjson,
    scrape,
    socket_source,
    stage_sink,
    start,
    stop,
    wait_until,
)
from tests.helpers.csvfiles import stage_ids
from tests.helpers.sockets import closed_by_server, self_signed

pytestmark = pytest.mark.timeout(120)

DESCRIPTORS = 96  # the daemon's soft RLIMIT_NOFILE during the test
FLOOD = 150


def _refused(port: int) -> float:
    return scrape(port).get(("streamer_socket_connections_total",
                             (("outcome", "refused"), ("source", "tls"))), 0.0)


def test_half_open_tls_handshakes_count_against_the_descriptor_ceiling(
        tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    self_signed(cert, key)
    api = free_port()
    records = make_records(300)
    # first_record_timeout_s = 0: the handshake timeout stays 60 s, the flood stays
    # open for the whole test (not closed at 10 s on a loaded host)
    extra = (f'tls = {{cert = "{cert}", key = "{key}"}}\nmax_connections = 1000\n'
             "first_record_timeout_s = 0")
    daemon, ports = start(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{api}")
                          + socket_source("tls", "newline", extra=extra)
                          + stage_sink(tmp_path), ["tls"])
    port = ports["tls"]
    _soft, hard = resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE, (DESCRIPTORS, hard))
    context = ssl.create_default_context(cafile=str(cert))
    flood: list[socket.socket] = []
    good = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                               server_hostname="localhost")
    try:
        for _ in range(FLOOD):  # TCP connections that never say hello
            with contextlib.suppress(OSError):
                flood.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        wait_until(lambda: _refused(api) > 0, timeout=30,
                   what="half-open handshakes refused")
        # the admitted client still delivers: the stage file gets its descriptor
        good.sendall(b"".join(p + b"\n" for p in ndjson(records)))
        wait_until(lambda: sum(stage_ids(tmp_path / "stage").values()) >= len(records),
                   timeout=30, what="the TLS client's records staged")
        assert daemon.proc.poll() is None, daemon.log[-3000:]
        assert "open file descriptors" in daemon.log, daemon.log[-3000:]
        refused = sum(closed_by_server(sock) for sock in flood)
        assert 0 < refused < len(flood), refused
        good.unwrap()
        good.close()
        summary = stop(daemon)
    finally:
        for sock in flood:
            sock.close()
        good.close()
        daemon.stop()
    assert_stage_equals(tmp_path / "stage", records)
    assert summary["sinks"]["stage"]["delivered"] == len(records)
