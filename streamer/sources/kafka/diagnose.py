"""Why no bootstrap server answered.

aiokafka tries each bootstrap server, logs each one's error (a refused connection,
a TLS failure, the broker refusing the SASL handshake or the credentials) and raises
`KafkaConnectionError("Unable to bootstrap ...")`, which says none of that.  One
connection per server, made the way the consumer makes them, gets the reasons back
for /health and `check --connect`: a refused password then reads as one, not as a
network failure.  Only on a failed start: never on the read path.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from streamer.sources.kafka.config import KafkaSourceConfig, connection_options

PROBE_TIMEOUT_S = 5.0
MAX_REASON_CHARS = 200


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer (timeout)"
    text = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)).strip()
    # aiokafka's errors repeat their class in their text ("[Error 33] Name: ...")
    name = type(exc).__name__
    return (text if name in text else f"{name}: {text}" if text else name)[:MAX_REASON_CHARS]


async def _probe(server: str, options: dict[str, Any]) -> str | None:
    """The error connecting to one server (None: it answers now)."""
    from aiokafka.conn import create_conn

    host, _, port = server.rpartition(":")
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            conn = await create_conn(host.strip("[]"), int(port),
                                     request_timeout_ms=int(PROBE_TIMEOUT_S * 1000),
                                     **options)
    except Exception as exc:  # what aiokafka's bootstrap met there, whatever it is
        return _reason(exc)
    with contextlib.suppress(Exception):
        conn.close()
    return None


async def bootstrap_failure(cfg: KafkaSourceConfig) -> str:
    """`SERVER: reason; ...` for each bootstrap server that fails now ("": none)."""
    options = connection_options(cfg)
    servers = options.pop("bootstrap_servers")
    reasons = await asyncio.gather(*(_probe(s, options) for s in servers))
    failed = [f"{server}: {reason}" for server, reason in zip(servers, reasons, strict=True)
              if reason is not None]
    return "; ".join(failed)
