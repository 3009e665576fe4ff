"""Connection-level failures of aiohttp requests: which are retried, and how
they are described without the request URL (its query string may hold a key).
Apart from `streamer.retry` so that a run without HTTP sinks does not load
aiohttp."""

from __future__ import annotations

import aiohttp

RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError, aiohttp.ClientError, OSError)


def is_retryable_error(exc: BaseException) -> bool:
    """Timeouts and connection-level failures (refused, reset, disconnected,
    a broken response) are retryable; anything else is a bug and propagates."""
    return isinstance(exc, RETRYABLE_ERRORS) and not isinstance(exc, aiohttp.InvalidURL)


def error_reason(exc: BaseException) -> str:
    """A short description of a connection-level failure without its URL:
    aiohttp messages may carry the request URL (and its query string)."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    kind = type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{kind}: cannot connect to {exc.host}:{exc.port} ({exc.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{kind}: server disconnected"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{kind}: {exc.strerror}"
    return kind
