"""How the TD sink reports a failed request: its reason (secrets masked), the
sink's failing state (/health) and a rate-limited warning.

With a destination failing part of the time (30% of requests at random) this
runs thousands of times a second, so its cost counts: a warning the rate
limiter would suppress is counted by the limiter without building a log
record (its "repeated N times" line says how many), and a reason seen before
is not masked again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from streamer.observability.log_limit import limit_group
from streamer.observability.logs import rate_limiter
from streamer.observability.metrics import SinkStats
from streamer.sinks.td.http_client import Response, error_reason

log = logging.getLogger("streamer.sink.td")

ERROR_BODY_BYTES = 512  # how much of an error response goes into the reason
RECOVERY_LOG_AFTER_S = 10.0  # "succeed again" is logged after failures this long
KNOWN_REASONS = 256  # masked reasons remembered (a destination has few distinct ones)
RETRIED = "td sink %s: POST %s failed: %s; retried in %.2fs (concurrency limit %d)"
PAUSED = "td sink %s: POST %s failed: %s; all requests paused %.2fs"


class FailureReport:
    def __init__(self, sink: str, stats: SinkStats, mask: Callable[[str], str]) -> None:
        self._sink = sink
        self._stats = stats
        self._mask = mask
        self._group = limit_group(sink)
        self._known: dict[object, str] = {}  # what failed -> its masked reason

    def error(self, exc: BaseException) -> str:
        """The reason of a request that got no answer (timeout, reset, ...)."""
        raw = error_reason(exc)
        reason = self._known.get(raw)
        if reason is None:
            reason = self._remember(raw, self._mask(raw))
        return reason

    def response(self, response: Response) -> str:
        """"HTTP <status>: <body>", masked before it is cut (a secret echoed
        across the cut is masked whole) and after (a cut copy is masked too)."""
        key = (response.status, response.body, response.location)
        reason = self._known.get(key)
        if reason is None:
            reason = self._remember(key, self._response_reason(response))
        return reason

    def _response_reason(self, response: Response) -> str:
        status = response.status
        text = self._mask(response.body.decode("utf-8", "replace").strip())
        if len(text) > ERROR_BODY_BYTES:
            text = self._mask(text[:ERROR_BODY_BYTES]) + " [cut]"
        if 300 <= status < 400:
            host = urlsplit(response.location or "").hostname or "none"
            text = (f"a redirect, which is not followed (Location host: "
                    f"{self._mask(host)}){'; ' + text if text else ''}")
        return f"HTTP {status}: {text}" if text else f"HTTP {status}"

    def _remember(self, key: object, reason: str) -> str:
        if len(self._known) >= KNOWN_REASONS:
            self._known.clear()
        self._known[key] = reason
        return reason

    def redacted(self, exc: BaseException) -> RuntimeError:
        """A bug's exception without any secret in its message."""
        return RuntimeError(f"td sink {self._sink}: {type(exc).__name__}: "
                            f"{self._mask(str(exc))}")

    def failed(self, path: str, reason: str, delay: float, limit: int) -> None:
        """A request that is retried alone after `delay` seconds."""
        self._stats.failed(f"POST {path}: {reason}")
        self._warn(RETRIED, (self._sink, path, reason, delay, limit))

    def paused(self, path: str, reason: str, pause: float) -> None:
        """A request that made every request wait `pause` seconds (429, Retry-After)."""
        self._stats.failed(f"POST {path}: {reason}")
        self._warn(PAUSED, (self._sink, path, reason, pause))

    def recovered(self) -> None:
        stats = self._stats
        since = stats.failing_since
        stats.recovered()
        if since is not None and time.monotonic() - since >= RECOVERY_LOG_AFTER_S:
            log.info("td sink %s: requests succeed again after %.1fs of failures",
                     self._sink, time.monotonic() - since)

    def _warn(self, template: str, args: tuple) -> None:
        """A warning, rate-limited per sink (log_limit.py)."""
        if not log.isEnabledFor(logging.WARNING):
            return
        limiter = rate_limiter()
        if limiter is None:
            log.warning(template, *args, extra=self._group)
            return
        key = (log.name, logging.WARNING, template, self._sink)
        if limiter.room(key):
            log.warning(template, *args, extra=self._group)
        else:
            limiter.count_suppressed(key, 1, template, args)
