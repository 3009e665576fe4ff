"""A lean HTTP/1.1 client for the TD sink: POSTs of ready-made bodies on
kept-alive connections, responses parsed by llhttp (httptools).

Why not aiohttp's client: per request it builds a request and a response
object, merges headers and, on Python < 3.12, starts a task to write the body:
about 60 us of CPU here, while a postback request needs one `write` and one
parsed status line (the bench's postback rows; bench/README.md).  This client
does what the TD sink needs and nothing more: POST with a Content-Length body;
responses delimited by Content-Length, chunks or the end of the connection;
interim 1xx responses skipped; keep-alive as the response says; TLS; a forward
proxy (proxy.py: a CONNECT tunnel for https, absolute URLs for http); a name's
several addresses raced (network/addresses.py, RFC 8305); a total
timeout per request covering the connection, the request and the response.
No redirects or cookies; the sink sends no Accept-Encoding, which allows any coding
(RFC 9110): a gzip or deflate body (a proxy's or a CDN's error page) is decoded as far
as the kept preview goes.  A
failure is never retried here (the caller's retry policy decides, with the
error's reason: `error_reason`) but one: a kept-alive connection the server
closed before any byte of a response, which it closed while idle as the request
went out (its keep-alive timeout), and so read none of: the request goes again
at once on a new connection, as aiohttp and other clients do.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson

from streamer.network.addresses import connect_socket
from streamer.sinks.td.proxy import Proxy

IDLE_TIMEOUT_S = 30.0  # a pooled connection idle longer is closed, not reused
LARGE_BODY = 64 * 1024  # bodies at least this big are written apart from the head
CONNECT_HEAD_LIMIT = 64 * 1024  # a proxy's answer to CONNECT is a few hundred bytes
COMPRESSED = (b"gzip", b"x-gzip", b"deflate")  # Content-Encoding values decoded


class HttpClientError(ConnectionError):
    """A connection-level failure: worth retrying."""


class CannotConnect(HttpClientError):
    def __init__(self, host: str, port: int, cause: OSError, what: str = "") -> None:
        # the errno's words: a socket's connect says "Connect call failed (ADDRESS)";
        # a resolver's error (socket.gaierror) has a negative one and its own words
        why = (os.strerror(cause.errno) if cause.errno and cause.errno > 0
               else cause.strerror or cause)
        super().__init__(f"cannot connect to {what}{host}:{port} ({why})")


class ProxyRefused(HttpClientError):
    """The proxy did not open the tunnel (407, 403, 502, ...): retried like any
    connection error, its status in the reason."""


class ServerDisconnected(HttpClientError):
    def __init__(self) -> None:
        super().__init__("server closed the connection before a whole response")


class BadResponse(HttpClientError):
    pass


ECHOED_KEY = re.compile(rb"(td_write_key=|TD1[ +]+)[^\s&\"'<>]*", re.IGNORECASE)


class NotTdAnswer(HttpClientError):
    """A 2xx whose body TD never sends (TD's APIs answer a JSON object): a captive
    portal's page, a proxy's or a load balancer's answer, a body cut short.  Nothing
    says the records arrived: retried like a connection error, the connection closed."""

    def __init__(self, status: int, content_type: str | None, body: bytes) -> None:
        # a page that echoes the request (its query's td_write_key, a TD1 header) is
        # redacted before the cut: the sink masks the key whole, not a cut prefix
        preview = ECHOED_KEY.sub(rb"\1(hidden)", body.strip())[:60].decode("utf-8", "replace")
        super().__init__(f"HTTP {status} that is not TD's answer "
                         f"({content_type or 'no Content-Type'}: {preview!r}); "
                         "a proxy or a captive portal in the way?")


def td_answer(body: bytes, whole: bool) -> bool:
    """Whether a 2xx body can be TD's: empty (nothing to judge), or JSON (as far as
    the kept preview goes when `whole` is false)."""
    text = body.strip()
    if not text:
        return True
    if text[:1] not in (b"{", b"["):
        return False
    if not whole:
        return True
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def error_reason(exc: BaseException) -> str:
    """A failure's reason for logs and dead letters: never the request target
    (its query may hold a key), only what went wrong."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    kind = type(exc).__name__
    if isinstance(exc, HttpClientError):
        return f"{kind}: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{kind}: {exc.strerror}"
    return kind


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    retry_after: str | None
    body: bytes  # its first `max_body` bytes
    location: str | None = None  # of a redirect (which is not followed)


class _Connection(asyncio.Protocol):
    """One connection, one request at a time; answers through `waiter`."""

    def __init__(self, max_body: int) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.reusable = False
        self.closed = False
        self.answered = False  # a byte of a response came since the last send
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self._retry_after: str | None = None
        self._location: str | None = None
        self._content_type: str | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._cut = False  # the body went on past the kept preview
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the end is in the data
        self._decoder: Any = None  # of a gzip or deflate body

    def send(self, head: bytes, body: bytes, waiter: asyncio.Future[Response]) -> None:
        assert self.transport is not None
        self.reusable = False
        self.answered = False
        self.waiter = waiter
        self._reset()
        if len(body) < LARGE_BODY:
            self.transport.write(b"%s%d\r\n\r\n%s" % (head, len(body), body))
        else:
            self.transport.write(b"%s%d\r\n\r\n" % (head, len(body)))
            self.transport.write(body)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(BadResponse(f"malformed response: {exc}"))
            self.abort()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            if self._headers_done and not self._framed:
                self._complete()  # a body delimited by the end of the connection
            else:
                self._fail(ServerDisconnected())
        # the parser and the transport refer back to this protocol: without these
        # cycles a closed connection is freed at once, not by the garbage collector
        # (a destination that drops connections closes thousands a second)
        self._parser = _CLOSED
        self.transport = None

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        status, body = self._parser.get_status_code(), b"".join(self._body)
        if 200 <= status < 300 and not td_answer(body, not self._cut):
            self.reusable = False  # whatever answers on it is not TD
            waiter.set_exception(NotTdAnswer(status, self._content_type, body))
            return
        waiter.set_result(Response(status, self._retry_after, body, self._location))

    # -- httptools callbacks ----------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"retry-after":
            self._retry_after = value.decode("latin-1")
        elif name == b"location":
            self._location = value.decode("latin-1")
        elif name == b"content-type":
            self._content_type = value.decode("latin-1")[:80]
        elif name in (b"content-length", b"transfer-encoding"):
            self._framed = True
        elif name == b"content-encoding" and value.strip().lower() in COMPRESSED:
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        room = self._max_body - self._body_size
        if room <= 0:
            self._cut = True
            return
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body, room)
            except zlib.error:  # not what it said: the preview ends here
                self._body_size = self._max_body
                self._cut = True
                return
            self._cut = self._cut or bool(self._decoder.unconsumed_tail)
        self._cut = self._cut or len(body) > room
        self._body.append(body[:room])
        self._body_size += min(room, len(body))

    def on_message_complete(self) -> None:
        if 100 <= self._parser.get_status_code() < 200:
            self._reset()  # an interim response: the real one follows
            return
        self.reusable = self._parser.should_keep_alive()
        self._complete()


class _TunnelSetup(asyncio.Protocol):
    """A connection to a proxy until its answer to CONNECT: `head` is that answer's
    status line and headers (the proxy sends nothing more before the TLS handshake)."""

    def __init__(self) -> None:
        self.head: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._data = b""

    def data_received(self, data: bytes) -> None:
        self._data += data
        if b"\r\n\r\n" in self._data and not self.head.done():
            self.head.set_result(self._data)
        elif len(self._data) > CONNECT_HEAD_LIMIT and not self.head.done():
            self.head.set_exception(BadResponse("oversized answer to CONNECT"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(ServerDisconnected())


def _check_tunnel(head: bytes, proxy: Proxy, host: str, port: int) -> None:
    """Raises ProxyRefused unless the proxy's answer to CONNECT is a 2xx."""
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProxyRefused(f"proxy {proxy} answered CONNECT with {status_line[:80]!r}")
    if not 200 <= int(parts[1]) < 300:
        raise ProxyRefused(f"proxy {proxy} refused CONNECT {host}:{port}: "
                           f"HTTP {' '.join(parts[1:])[:80]}")


class _ClosedParser:
    """The parser of a closed connection: it gets no more data."""

    def feed_data(self, data: bytes) -> None:
        pass


_CLOSED: Any = _ClosedParser()


def _expire(waiter: asyncio.Future[Response]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class HttpClient:
    """POSTs to one origin (scheme, host, port) with fixed headers.

    The caller bounds how many requests are in flight; each holds one
    connection, taken from the pool of idle ones or opened anew.
    """

    def __init__(self, origin: str, headers: Mapping[str, str], *, timeout_s: float,
                 max_body: int = 512, ssl_context: ssl.SSLContext | None = None,
                 proxy: Proxy | None = None,
                 on_resent: Callable[[], None] = lambda: None) -> None:
        """`on_resent`: called each time a request goes again on a new connection (its
        kept-alive one closed before any byte of a response)."""
        url = urlsplit(origin)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("origin must be an http(s)://host[:port] URL")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl = (ssl_context or ssl.create_default_context()) \
            if url.scheme == "https" else None
        self._header_lines = "".join(f"{k}: {v}\r\n" for k, v in
                                     {"Host": url.netloc, **headers}.items())
        self._proxy = proxy
        # an http origin through a proxy: the proxy gets absolute URLs and its header
        self._forwarded = proxy is not None and self._ssl is None
        self._absolute = f"{url.scheme}://{url.netloc}" if self._forwarded else ""
        if self._forwarded:
            assert proxy is not None
            self._header_lines += proxy.header_lines()
        self._timeout_s = timeout_s
        self._max_body = max_body
        self._idle: list[_Connection] = []
        self._on_resent = on_resent

    def head(self, target: str) -> bytes:
        """The request's bytes up to the Content-Length value, for `post`.
        `target` is the path and query."""
        return (f"POST {self._absolute}{target} HTTP/1.1\r\n{self._header_lines}"
                "Content-Length: ").encode()

    async def post(self, head: bytes, body: bytes) -> Response:
        """Raises TimeoutError or an OSError (HttpClientError among them) when no
        whole response came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        connection = self._take_idle(loop.time())
        if connection is not None:
            try:
                return await self._exchange(loop, connection, deadline, head, body)
            except ServerDisconnected:
                if connection.answered:
                    raise
                # closed while idle as the request went out: the server read none of it
                self._on_resent()
        async with asyncio.timeout_at(deadline):
            connection = await self._connect(loop)
        return await self._exchange(loop, connection, deadline, head, body)

    async def _exchange(self, loop: asyncio.AbstractEventLoop, connection: _Connection,
                        deadline: float, head: bytes, body: bytes) -> Response:
        waiter = loop.create_future()
        # a timer, not asyncio.timeout: this is the per-request path
        timer = loop.call_at(deadline, _expire, waiter)
        connection.send(head, body, waiter)
        try:
            response = await waiter
        except BaseException:
            connection.abort()  # timed out, cancelled or broken mid-exchange
            timer.cancel()
            # the waiter holds the exception, whose traceback holds this frame:
            # without the waiter here, no cycle for the garbage collector to find
            del waiter, timer
            raise
        timer.cancel()
        if connection.reusable and not connection.closed:
            connection.idle_since = loop.time()
            self._idle.append(connection)
        else:
            connection.close()
        return response

    def _take_idle(self, now: float) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_TIMEOUT_S:
                return connection
            connection.close()
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        max_body = self._max_body
        proxy = self._proxy
        if proxy is not None and not self._forwarded:
            return await self._connect_through_tunnel(loop, proxy)
        host, port = (proxy.host, proxy.port) if proxy is not None else (self._host,
                                                                         self._port)
        try:
            sock = await connect_socket(loop, host, port)
        except OSError as exc:
            raise CannotConnect(host, port, exc, "proxy " if proxy else "") from None
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(max_body), sock=sock, ssl=self._ssl,
                server_hostname=self._host if self._ssl else None)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
                raise CannotConnect(host, port, exc, "proxy " if proxy else "") from None
            raise
        return connection

    async def _connect_through_tunnel(self, loop: asyncio.AbstractEventLoop,
                                      proxy: Proxy) -> _Connection:
        """TLS to the origin inside a CONNECT tunnel through `proxy`."""
        try:
            sock = await connect_socket(loop, proxy.host, proxy.port)
        except OSError as exc:
            raise CannotConnect(proxy.host, proxy.port, exc, "proxy ") from None
        try:
            transport, setup = await loop.create_connection(_TunnelSetup, sock=sock)
        except BaseException:
            sock.close()
            raise
        host = f"[{self._host}]" if ":" in self._host else self._host  # IPv6
        try:
            transport.write((f"CONNECT {host}:{self._port} HTTP/1.1\r\n"
                             f"Host: {host}:{self._port}\r\n"
                             f"{proxy.header_lines()}\r\n").encode())
            _check_tunnel(await setup.head, proxy, host, self._port)
            connection = _Connection(self._max_body)
            tls = await loop.start_tls(transport, connection, self._ssl,  # type: ignore[arg-type]
                                       server_hostname=self._host)
        except BaseException:
            transport.abort()
            raise
        assert tls is not None
        connection.connection_made(tls)
        return connection

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
