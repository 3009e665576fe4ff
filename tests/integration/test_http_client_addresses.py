"""The TD sink's HTTP client and a host name with several addresses, one of them dead
in the worst way (a SYN nobody answers: a blackholed route, a firewall that drops):
the next address is tried after a short delay (RFC 8305, Happy Eyeballs), as browsers
and curl do, instead of every connection waiting out `timeout_s` on the dead one.

The name's answer is given to the event loop's resolver (the test's only stand-in:
the connections are real, on loopback); the dead address is a listener on ::1 whose
backlog is full, which drops the SYN as a blackholed route does."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from streamer.sinks.td.http_client import CannotConnect, HttpClient, error_reason
from tests.helpers import free_port
from tests.helpers.sockets import blackholed_port, resolve_dead_first

NAME = "td.multi.test"


@contextlib.asynccontextmanager
async def live_server(port: int, seen: list[bytes]) -> AsyncIterator[None]:
    async def handle(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def test_a_dead_first_address_falls_over_to_the_next_within_a_second() -> None:
    with blackholed_port() as port:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.settimeout(0.3)
        with pytest.raises(TimeoutError):  # the dead address really is dead
            probe.connect(("::1", port))
        probe.close()
        seen: list[bytes] = []
        async with live_server(port, seen):
            resolve_dead_first(asyncio.get_running_loop(), NAME, port)
            http = HttpClient(f"http://{NAME}:{port}", {}, timeout_s=5.0)
            try:
                began = time.monotonic()
                first = await http.post(http.head("/db/t"), b'{"a":1}')
                took = time.monotonic() - began
                http.close()  # the next request opens a new connection: same again
                second = await http.post(http.head("/db/t"), b'{"a":2}')
            finally:
                http.close()
    assert (first.status, first.body, second.status) == (200, b"{}", 200)
    assert seen == [b'{"a":1}', b'{"a":2}']
    assert took < 2.5, f"the first request took {took:.1f}s"


async def test_the_reasons_name_the_failure_in_words() -> None:
    """A refused connect is "Connection refused" (not the socket's "Connect call failed
    (ADDRESS)"), a name that does not resolve the resolver's words."""
    reasons = []
    for origin in (f"http://127.0.0.1:{free_port()}", "http://no-such-host.invalid:80"):
        http = HttpClient(origin, {}, timeout_s=5.0)
        with pytest.raises(CannotConnect) as failed:
            await http.post(http.head("/db/t"), b"{}")
        reasons.append(error_reason(failed.value))
    assert reasons[0].endswith("(Connection refused)"), reasons[0]
    assert reasons[1].startswith("CannotConnect: cannot connect to no-such-host.invalid:80 (")
    assert "Unknown error" not in reasons[1] and "-2" not in reasons[1], reasons[1]
