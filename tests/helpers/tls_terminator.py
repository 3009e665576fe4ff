"""A TLS terminator on loopback in front of a plain HTTP server (moto, an emulator):
what a load balancer with its own certificate is to the real endpoint."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.sockets import self_signed


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _serve(conn: socket.socket, context: ssl.SSLContext, upstream: tuple[str, int]) -> None:
    with contextlib.suppress(OSError), conn:
        tls = context.wrap_socket(conn, server_side=True)  # a client refusing it ends here
        with tls, socket.create_connection(upstream) as plain:
            back = threading.Thread(target=_pipe, args=(plain, tls), daemon=True)
            back.start()
            _pipe(tls, plain)
            back.join(30)


@contextlib.contextmanager
def tls_terminator(tmp_path: Path, upstream_port: int) -> Iterator[tuple[int, Path]]:
    """(port, certificate): TLS with a self-signed certificate for localhost on
    `port`, each connection piped to 127.0.0.1:`upstream_port`."""
    cert, key = tmp_path / "terminator-cert.pem", tmp_path / "terminator-key.pem"
    self_signed(cert, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            threading.Thread(target=_serve, args=(conn, context, ("127.0.0.1", upstream_port)),
                             daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], cert
    finally:
        server.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        server.close()
        thread.join(5)
