"""TLS on a socket source: the handshake done in the open, so a failed one is seen.

With `create_server(ssl=...)` asyncio does the handshake before the connection's
protocol exists and drops a failure without a word (a client with a certificate
it does not trust, plain text, an old protocol just disappears).  Here the
server accepts plain TCP and `Handshake` upgrades each connection with
`loop.start_tls`: a success hands the TLS transport to the connection (as
`create_server` would have), a failure is counted and logged -- one WARNING per
peer address at most every `WARN_EVERY_S`, so a port scanner cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamer.observability.log_limit import limit_group

if TYPE_CHECKING:
    from streamer.sources.socket.config import TlsConfig
    from streamer.sources.socket.source import Connection

log = logging.getLogger("streamer.source.socket")

WARN_EVERY_S = 60.0  # per peer address
MAX_PEERS_REMEMBERED = 4096  # peers whose last warning time is kept (oldest dropped)
HANDSHAKE_TIMEOUT_S = 60.0


def server_context(cfg: TlsConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cfg.cert, cfg.key)
    return context


# what a failure's OpenSSL reason most often means on a server
HINTS = {
    "HTTP_REQUEST": "plain HTTP, not TLS",
    "WRONG_VERSION_NUMBER": "not TLS, plain text perhaps, or a TLS version not spoken",
    "UNSUPPORTED_PROTOCOL": "the client's TLS version is too old",
    "NO_SHARED_CIPHER": "no cipher in common",
    "TLSV1_ALERT_UNKNOWN_CA": "the client does not trust the server's certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the client refused the server's certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the client refused the server's certificate",
}


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        hint = HINTS.get(exc.reason)
        return f"{exc.reason}" + (f" ({hint})" if hint else "")
    if isinstance(exc, TimeoutError):
        return "no handshake in time"
    if isinstance(exc, ConnectionError | EOFError):
        return f"closed during the handshake ({type(exc).__name__})"
    return str(exc) or type(exc).__name__


class TlsFailures:
    """Failed handshakes of one source: counted, and warned about per peer address."""

    def __init__(self, source: str, format_peer: Callable[[Any], str],
                 warn_every_s: float = WARN_EVERY_S) -> None:
        self._source = source
        self.format_peer = format_peer
        self._warn_every_s = warn_every_s
        self._last_warned: dict[str, float] = {}  # peer host -> monotonic time
        self._unwarned: dict[str, int] = {}  # peer host -> failures since its warning
        self.count = 0

    def failed(self, address: Any, exc: BaseException) -> None:
        self.count += 1
        host = str(address[0]) if isinstance(address, tuple) else str(address)
        now = time.monotonic()
        last = self._last_warned.get(host)
        if last is not None and now - last < self._warn_every_s:
            self._unwarned[host] = self._unwarned.get(host, 0) + 1
            return
        self._last_warned.pop(host, None)  # re-inserted last: the dict stays oldest first
        self._last_warned[host] = now
        while len(self._last_warned) > MAX_PEERS_REMEMBERED:
            oldest = next(iter(self._last_warned))
            del self._last_warned[oldest]
            self._unwarned.pop(oldest, None)
        more = self._unwarned.pop(host, 0)
        log.warning("socket source %s: TLS handshake with %s failed: %s%s", self._source,
                    self.format_peer(address), failure_reason(exc),
                    f" ({more} more from {host} in the last {now - last:.0f}s)"
                    if more and last is not None else "", extra=limit_group(self._source))


class Handshake(asyncio.BufferedProtocol):
    """A TLS connection until its handshake is done: then `make_connection()`'s
    Connection gets the TLS transport; a failure is reported to `failures`.

    A buffered protocol: uvloop's `start_tls` hands the transport over to its
    (buffered) TLS protocol only from one of the same kind (from a plain one the
    handshake never gets the client's bytes).  uvloop may read before
    `connection_made` can pause reading: what came before the TLS protocol took
    the transport (the client's hello) is kept and given to it first."""

    def __init__(self, context: ssl.SSLContext, make_connection: Callable[[], Connection],
                 failures: TlsFailures, pending: set[asyncio.Task],
                 admit: Callable[[str, int], bool],
                 timeout_s: float = HANDSHAKE_TIMEOUT_S) -> None:
        self._context = context
        self._make_connection = make_connection
        self._failures = failures
        self._pending = pending
        self._admit = admit  # (peer, descriptor number): False closes it at once
        self._timeout_s = timeout_s
        self._early = bytearray()  # read before start_tls took the transport
        self._buffer = bytearray(0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if not self._admit(self._failures.format_peer(transport.get_extra_info("peername")),
                           sock.fileno() if sock is not None else -1):
            transport.close()
            return
        transport.pause_reading()  # type: ignore[attr-defined]  # the handshake reads
        task = asyncio.get_running_loop().create_task(self._upgrade(transport))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _upgrade(self, transport: asyncio.BaseTransport) -> None:
        address = transport.get_extra_info("peername")
        connection = self._make_connection()
        loop = asyncio.get_running_loop()
        # runs before the TLS protocol's connection_made, which start_tls schedules
        # next (and before reading resumes): it takes them into its incoming buffer
        loop.call_soon(self._hand_over_early, transport)
        try:
            tls = await loop.start_tls(
                transport, connection, self._context, server_side=True,  # type: ignore[arg-type]
                ssl_handshake_timeout=self._timeout_s)
        except (OSError, EOFError, TimeoutError, ssl.SSLError) as exc:
            transport.close()
            self._failures.failed(address, exc)
            return
        if tls is None:  # the peer went away as it completed
            transport.close()
            return
        connection.connection_made(tls)

    def _hand_over_early(self, transport: asyncio.BaseTransport) -> None:
        early, self._early = self._early, bytearray()
        tls = transport.get_protocol()
        if tls is self or transport.is_closing():
            return
        view = memoryview(early)
        while view:
            buffer = tls.get_buffer(len(view))  # type: ignore[attr-defined]
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            tls.buffer_updated(size)  # type: ignore[attr-defined]
            view = view[size:]

    def get_buffer(self, sizehint: int) -> bytearray:
        if len(self._buffer) < 65536:
            self._buffer = bytearray(65536)
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._early += self._buffer[:nbytes]
