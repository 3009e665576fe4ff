"""Producers on real TCP sockets for the socket source."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.helpers.process import Daemon, write_config
from tests.helpers.waiting import wait_for_log

LISTENING = r"socket source {name} listening on 127\.0\.0\.1:(\d+)"


def start(tmp: Path, text: str, names: list[str], log: str = "daemon.log"
          ) -> tuple[Daemon, dict[str, int]]:
    """Start the daemon; the port each named socket source listens on."""
    daemon = Daemon(write_config(tmp, text), tmp / log)
    ports = {name: int(wait_for_log(daemon, LISTENING.format(name=name))[-1].group(1))
             for name in names}
    return daemon, ports


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


def self_signed(cert: Path, key: Path) -> None:
    """A self-signed certificate for localhost and its key, written by openssl."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed `sock` (a refused connection is closed at once; an
    admitted one stays open)."""
    sock.setblocking(False)
    try:
        return sock.recv(16) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


@contextlib.contextmanager
def blackholed_port(port: int = 0) -> Iterator[int]:
    """A port on ::1 (`port`, or a free one) whose SYNs go unanswered: listening, never
    accepting, its backlog full, as a blackholed route or a firewall that drops. Yields
    the port; no connection to it completes."""
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind(("::1", port))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(8):
            filler = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("::1", port))
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def resolve_dead_first(loop: asyncio.AbstractEventLoop, name: str, port: int) -> None:
    """`name` resolves on `loop` to ::1 first (the tests make it drop SYNs: a
    blackholed_port), then 127.0.0.1; other names as before."""
    real = loop.getaddrinfo

    async def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host != name:
            return await real(host, *args, **kwargs)
        return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 ("127.0.0.1", port))]

    loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]
