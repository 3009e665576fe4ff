"""Connecting to a host name with several addresses (RFC 8305, "Happy Eyeballs",
by aiohappyeyeballs, aiohttp's own): the addresses are tried in turn, families
alternating, each started 0.25 s after the one before unless that one failed sooner,
and the first to connect wins.

Why not the event loop's `create_connection`: uvloop's (the daemon's loop) tries the
addresses one after the other, each until it fails; an address whose SYN nobody
answers (a blackholed route, a firewall that drops, an IPv6 path that is broken
without a word) fails only after the kernel's minutes of retries, so every connection
to a name listing it first waited out the whole request `timeout_s` and the sink
retried for ever although the name's other addresses answered.  asyncio's own loop has
`happy_eyeballs_delay`; uvloop has no such option.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import aiohappyeyeballs

ATTEMPT_DELAY_S = 0.25  # RFC 8305's recommended "Connection Attempt Delay"


async def resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[Any]:
    """The addresses of `host`; an address written as one is itself, at once (the
    loop's resolver runs in a thread)."""
    try:
        ip = ipaddress.ip_address(host)
        if "%" in host:  # a scoped IPv6 address: the resolver fills in its scope id
            raise ValueError(host)
    except ValueError:
        return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                      proto=socket.IPPROTO_TCP)
    if ip.version == 4:
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))]
    return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
             (host, port, 0, 0))]


async def connect_socket(loop: asyncio.AbstractEventLoop, host: str,
                         port: int) -> socket.socket:
    """A connected non-blocking TCP socket to `host`:`port`.  Raises OSError: the
    resolver's or the attempts' (several of them in one message)."""
    infos = await resolve(loop, host, port)
    if not infos:
        raise OSError(f"no address for {host}")
    sock = await aiohappyeyeballs.start_connection(
        infos, happy_eyeballs_delay=ATTEMPT_DELAY_S, interleave=1, loop=loop)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the requests are small
    return sock
