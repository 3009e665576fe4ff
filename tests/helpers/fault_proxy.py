"""A loopback TCP proxy (threads) in front of a destination that misbehaves on some
connections: the network between streamer and TD, S3, Timestream or Data Exchange.

Connection k (counted from 1) is faulty when `k % every == 0` (every = 1: all of them),
for the first `limit` faulty ones (None: no end); the others are forwarded as they are.
`mode` is one of MODES, or several taken in turn by the faulty connections. A faulty
connection does, by its mode:

- "stall": reads a part of the request, then never answers nor closes
- "drop": forwards the request, then half of the first answer, then closes (FIN)
- "rst": as "drop", then resets (RST) instead of closing
- "slow": forwards the answer one byte every `delay` seconds
- "reset": resets the connection at once, before reading anything
- "no_read": accepts and never reads (the sender's buffers fill)
- "portal": answers the request `200 OK` with a captive portal's HTML, then closes
- "truncated_json": answers the request `200 OK` application/json with half a JSON body,
  then closes
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

MODES = ("stall", "drop", "rst", "slow", "reset", "no_read", "portal", "truncated_json")
PORTAL = (b"<!DOCTYPE html><html><head><title>Hotel WiFi</title></head>"
          b"<body><form action='/login'>Please accept the terms</form></body></html>")
TRUNCATED = b'{"receipts":[{"success":tr'


class FaultProxy:
    def __init__(self, target_port: int, mode: str | tuple[str, ...], *, every: int = 1,
                 limit: int | None = None, delay: float = 0.05,
                 target_host: str = "127.0.0.1") -> None:
        self.modes = (mode,) if isinstance(mode, str) else mode
        if not set(self.modes) <= set(MODES):
            raise ValueError(f"unknown mode in {mode!r}")
        self.target = (target_host, target_port)
        self.every, self.limit, self.delay = every, limit, delay
        self.accepted = self.faulted = 0
        self._lock = threading.Lock()
        self._held: list[socket.socket] = []
        self._closed = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self._listener.close()
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            reset(sock)

    def _hold(self, *socks: socket.socket) -> None:
        with self._lock:
            self._held.extend(socks)

    def _next_mode(self) -> str:
        self.accepted += 1
        if self.accepted % self.every or (self.limit is not None
                                          and self.faulted >= self.limit):
            return "forward"
        self.faulted += 1
        return self.modes[(self.faulted - 1) % len(self.modes)]

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            client.settimeout(None)
            mode = self._next_mode()
            if mode == "reset":
                reset(client)
            elif mode == "no_read":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
                self._hold(client)
            else:
                threading.Thread(target=self._serve, args=(client, mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: str) -> None:
        if mode == "stall":
            with contextlib.suppress(OSError):
                client.recv(100)
            self._hold(client)
            return
        if mode in ("portal", "truncated_json"):
            self._fake(client, mode)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            reset(client)
            return
        self._hold(client, upstream)
        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        if mode == "forward":
            pump(upstream, client)
        elif mode == "slow":
            pump(upstream, client, delay=self.delay)
        else:  # drop / rst: half of the first answer, then the connection ends
            with contextlib.suppress(OSError):
                data = upstream.recv(65536)
                client.sendall(data[:max(1, len(data) // 2)])
            if mode == "rst":
                reset(client)
            else:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                    client.close()
            reset(upstream)

    @staticmethod
    def _fake(client: socket.socket, mode: str) -> None:
        body, kind = (PORTAL, b"text/html") if mode == "portal" else (
            TRUNCATED, b"application/json")
        buffer = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in buffer:  # the request's head; its body is not awaited
                chunk = client.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            client.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: " + kind
                           + b"\r\nContent-Length: " + str(len(body)).encode()
                           + b"\r\n\r\n" + body)
            client.shutdown(socket.SHUT_WR)
            while client.recv(65536):  # the rest of the request, until the client closes
                pass
        reset(client)


def pump(src: socket.socket, dst: socket.socket, delay: float = 0.0) -> None:
    try:
        while data := src.recv(1 if delay else 65536):
            dst.sendall(data)
            if delay:
                time.sleep(delay)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        reset(src)
        reset(dst)


def reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), whatever state the socket is in."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
