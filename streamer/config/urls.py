"""Checks of the endpoints a config names (TD and AWS URLs, Kafka HOST:PORT)."""

from __future__ import annotations

from urllib.parse import ParseResult


def port_problem(parsed: ParseResult) -> str | None:
    """What is wrong with the URL's port, if anything: urllib refuses to read a port
    over 65535 or one that is not a number (a ValueError where the URL is first used,
    after the sources started), and port 0 would quietly be the scheme's own."""
    try:
        port = parsed.port
    except ValueError:
        port = 0
    if port != 0:
        return None
    return f"port {parsed.netloc.rsplit(':', 1)[-1]} is not 1-65535"
