"""TLS handshakes that fail on a TLS socket source are logged and counted: a client
that does not trust the server's certificate, plain text, an old protocol
(`openssl s_client -tls1_1`), one WARNING per peer address at most every minute
(a flood from one address is one line), and the outcome `tls_failed` of
`streamer_socket_connections_total`; good clients are served all along."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.helpers import (
    assert_stage_equals,
    base_config,
    count_stage_rows,
    encode,
    free_port,
    make_records,
    ndjson,
    scrape,
    socket_source,
    stage_sink,
    start,
    stop,
    wait_for_log,
    wait_until,
)
from tests.helpers.sockets import self_signed

pytestmark = pytest.mark.timeout(120)

FLOOD = 40


def connect(port: int, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(source, 0))


def send_good(port: int, cert: Path, payload: bytes) -> None:
    context = ssl.create_default_context(cafile=str(cert))
    with connect(port, "127.0.0.1") as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(payload)
        sock.unwrap()


def plain_text(port: int, source: str) -> None:
    with connect(port, source) as sock:
        sock.sendall(b'{"id": -1}\n' * 1000)  # more than the TLS record it looks like
        sock.shutdown(socket.SHUT_WR)
        try:
            while sock.recv(4096):
                pass
        except ConnectionResetError:
            pass


def tls_failures(port: int) -> float:
    return scrape(port).get(("streamer_socket_connections_total",
                             (("outcome", "tls_failed"), ("source", "tls"))), 0.0)


def test_failed_tls_handshakes_are_logged_per_peer_and_counted(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    self_signed(cert, key)
    api = free_port()
    records = make_records(500)
    extra = f'tls = {{cert = "{cert}", key = "{key}"}}'
    daemon, ports = start(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{api}")
                          + socket_source("tls", "newline", extra=extra)
                          + stage_sink(tmp_path), ["tls"])
    port = ports["tls"]
    try:
        send_good(port, cert, encode(ndjson(records[:250]), "newline"))
        # a client that does not trust the server's certificate (no CA given)
        with connect(port, "127.0.0.2") as raw, pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
        wait_for_log(daemon, r"WARNING .*socket source tls: TLS handshake with "
                             r"127\.0\.0\.2:\d+ failed: TLSV1_ALERT_UNKNOWN_CA \(the client "
                             r"does not trust the server's certificate\)")
        plain_text(port, "127.0.0.3")
        wait_for_log(daemon, r"WARNING .*TLS handshake with 127\.0\.0\.3:\d+ failed: "
                             r"WRONG_VERSION_NUMBER \(not TLS")
        old = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                              "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        assert old.returncode != 0
        wait_for_log(daemon, r"WARNING .*TLS handshake with 127\.0\.0\.1:\d+ failed: "
                             r"UNSUPPORTED_PROTOCOL \(the client's TLS version is too old\)")
        for _ in range(FLOOD):  # a scanner: one line for its address, every failure counted
            plain_text(port, "127.0.0.4")
        wait_until(lambda: tls_failures(api) == 3 + FLOOD, timeout=20,
                   what="every failed handshake counted")
        send_good(port, cert, encode(ndjson(records[250:]), "newline"))
        wait_until(lambda: count_stage_rows(tmp_path / "stage") >= len(records), timeout=30)
        stop(daemon)
    finally:
        daemon.stop()
    log = daemon.log
    assert len(re.findall(r"TLS handshake with 127\.0\.0\.4:\d+ failed", log)) == 1, log[-3000:]
    assert len(re.findall(r"TLS handshake with .* failed", log)) == 4, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert_stage_equals(tmp_path / "stage", records)
