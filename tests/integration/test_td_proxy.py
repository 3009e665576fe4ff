"""The TD sink through a forward proxy named by HTTPS_PROXY / HTTP_PROXY, as on a host
that reaches the internet only through one (before 2026-12-04 the variables were
ignored: TD was unreachable there while the S3 stage, through botocore, used them).

The endpoint's host name (`td.invalid`) resolves nowhere: only the proxy, which maps
it to loopback, can reach it, so a request that bypasses the proxy fails."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from streamer.sinks.td.http_client import HttpClient, ProxyRefused
from streamer.sinks.td.proxy import proxy_for
from tests.fixtures.td import TDEmulator
from tests.helpers import (
    TD_RETRY,
    base_config,
    file_source,
    make_records,
    multiset,
    run_cli,
    stored,
    td_sink,
    write_config,
    write_ndjson,
)

pytestmark = pytest.mark.timeout(60)

HOST = "td.invalid"  # RFC 2606: never resolves
USER, PASSWORD = "ops", "pr0xy-S3cret/pw"


class ForwardProxy:
    """An HTTP forward proxy on loopback: `CONNECT host:port` tunnels and absolute-URL
    requests, piped to `host:port` with `HOST` mapped to 127.0.0.1. Keeps each
    connection's first line and Proxy-Authorization; `refuse` answers every
    connection with that status instead."""

    def __init__(self, refuse: int | None = None) -> None:
        self.refuse = refuse
        self.seen: list[tuple[str, str | None]] = []
        self.port = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        first, *lines = head.decode("latin-1").split("\r\n")
        auth = next((line.split(": ", 1)[1] for line in lines
                     if line.lower().startswith("proxy-authorization:")), None)
        self.seen.append((first, auth))
        if self.refuse:
            writer.write(b"HTTP/1.1 %d Nope\r\nContent-Length: 0\r\n\r\n" % self.refuse)
            writer.close()
            return
        method, target, _ = first.split(" ")
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
        else:  # an absolute URL: http://host:port/path
            host, port = target.split("/")[2].rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1" if host == HOST else host, int(port))
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            up_writer.write(head)  # origin servers take absolute URLs too
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def url(self, credentials: bool = True) -> str:
        user = f"{USER}:{PASSWORD.replace('/', '%2F')}@" if credentials else ""
        return f"http://{user}127.0.0.1:{self.port}"


@contextlib.contextmanager
def proxy_thread(refuse: int | None = None) -> Iterator[ForwardProxy]:
    """The proxy on a loop of its own, for a daemon in another process."""
    proxy = ForwardProxy(refuse)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(proxy.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_records_reach_td_through_the_proxy(tmp_path: Path, td_emulator: TDEmulator) -> None:
    records = make_records(300)
    write_ndjson(tmp_path / "in.ndjson", records)
    endpoint = f"http://{HOST}:{td_emulator.port}"
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                          + file_source(tmp_path / "in.ndjson", follow=False)
                          + td_sink(endpoint, api="ingest", timeout_s=5, retry=TD_RETRY))
    with proxy_thread() as proxy:
        env = {"TD_WRITE_KEY": td_emulator.key, "HTTP_PROXY": proxy.url(),
               "NO_PROXY": "localhost"}
        checked = run_cli("check", "-c", str(config), env=env)
        done = run_cli("run", "-c", str(config), env=env)
    assert done.code == 0, done.stderr[-3000:]
    assert multiset(stored(td_emulator)) == multiset(records)
    assert proxy.seen and all(
        line.startswith(f"POST http://{HOST}:{td_emulator.port}/test_db/events ")
        and auth == basic(USER, PASSWORD) for line, auth in proxy.seen)
    assert f"proxy=http://127.0.0.1:{proxy.port}" in checked.stdout
    for text in (checked.stdout, checked.stderr, done.stderr):
        assert PASSWORD not in text and PASSWORD.replace("/", "%2F") not in text


def test_no_proxy_names_hosts_reached_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", ".treasuredata.com,localhost")
    assert proxy_for("https", "us01.records.in.treasuredata.com") is None
    assert str(proxy_for("https", "td.example.com")) == "http://proxy.example:3128"
    assert proxy_for("http", "td.example.com") is None  # no HTTP_PROXY
    monkeypatch.setenv("HTTPS_PROXY", "socks5://proxy.example:1080")
    with pytest.raises(ValueError, match="only http:// proxies"):
        proxy_for("https", "td.example.com")


@contextlib.asynccontextmanager
async def tls_echo_server(authority: trustme.CA) -> AsyncIterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(HOST).configure_cert(context)

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_https_goes_through_a_connect_tunnel(monkeypatch: pytest.MonkeyPatch) -> None:
    authority = trustme.CA()
    trust = ssl.create_default_context()
    authority.configure_trust(trust)
    proxy = ForwardProxy()
    server = await proxy.start()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url())
    try:
        async with tls_echo_server(authority) as port:
            http = HttpClient(f"https://{HOST}:{port}", {}, timeout_s=5, ssl_context=trust,
                              proxy=proxy_for("https", HOST))
            try:
                answers = [await http.post(http.head("/db/t"), b'{"n":%d}' % i)
                           for i in range(3)]
            finally:
                http.close()
    finally:
        server.close()
    assert [(a.status, a.body) for a in answers] == [(200, b'{"n":%d}' % i) for i in range(3)]
    # one tunnel, kept alive; the proxy never sees the request, only where it goes
    assert proxy.seen == [(f"CONNECT {HOST}:{port} HTTP/1.1", basic(USER, PASSWORD))]


async def test_a_proxy_refusing_the_tunnel_is_a_retried_failure_with_its_status(
        monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = ForwardProxy(refuse=407)
    server = await proxy.start()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url(credentials=False))
    http = HttpClient(f"https://{HOST}:443", {}, timeout_s=5, proxy=proxy_for("https", HOST))
    try:
        with pytest.raises(ProxyRefused, match=rf"proxy http://127\.0\.0\.1:{proxy.port} "
                                               rf"refused CONNECT {HOST}:443: HTTP 407"):
            await http.post(http.head("/x"), b"{}")
    finally:
        http.close()
        server.close()
