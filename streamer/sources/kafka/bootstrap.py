"""The bootstrap server handed to aiokafka: the first of them to answer.

aiokafka connects with the event loop's `create_connection` under `request_timeout_ms`
(40 s): uvloop's tries a name's addresses one after the other, each until it fails, so
a name whose first address drops SYNs (a blackholed route, a firewall that drops, a
broken IPv6 path) costs the whole 40 s at every try and never reaches its live
addresses; and aiokafka tries the bootstrap list in random order, 40 s for each dead
one.  So before each start the source races every address of every bootstrap server
(RFC 8305, as the TD sink connects: network/addresses.py) and gives aiokafka only the one
that answered: its address, or its name where TLS checks the host name (the name's
own order then stands).  Nothing answering hands the list over as it is: aiokafka's
failure, and `diagnose`, then say why.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohappyeyeballs
from aiokafka.conn import get_ip_port_afi

from streamer.network.addresses import ATTEMPT_DELAY_S, resolve

RACE_TIMEOUT_S = 10.0


async def first_to_answer(servers: list[str], keep_name: bool,
                          timeout_s: float = RACE_TIMEOUT_S) -> list[str]:
    """[the server (or its address) that accepted a TCP connection first], or
    `servers` when none did."""
    loop = asyncio.get_running_loop()
    infos: list[Any] = []
    owners: dict[tuple[str, int], str] = {}
    for server in servers:
        host, port, _ = get_ip_port_afi(server)
        port = port if port >= 0 else 9092
        try:
            found = await resolve(loop, host, port)
        except OSError:  # aiokafka's own attempt says why
            continue
        for info in found:
            infos.append(info)
            owners.setdefault(info[4][:2], server)
    if not infos:
        return servers
    try:
        sock = await asyncio.wait_for(aiohappyeyeballs.start_connection(
            infos, happy_eyeballs_delay=ATTEMPT_DELAY_S, interleave=1, loop=loop), timeout_s)
    except (OSError, TimeoutError):
        return servers
    with sock:
        address = sock.getpeername()[:2]
    server = owners.get(address)
    if server is None:  # a scoped address written back differently: nothing to prefer
        return servers
    if keep_name:
        return [server]
    host, port = address
    return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
