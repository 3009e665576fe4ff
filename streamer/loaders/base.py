"""What every loader shares: the permanent-failure signal and polling backoff."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from streamer.sinks.stage.journal import Window

# progress(**fields): journals loader state (task ids, ...) durably before it acts on it
Progress = Callable[..., None]


class PermanentLoadError(Exception):
    """The window can never load as it is (bad data, bad types): do not retry."""


class NotServiceAnswer(ConnectionError):
    """A 2xx without what the service always answers (a proxy's or a captive portal's
    page parsed as an empty answer): retried, as a connection that failed."""


def answered(answer: dict[str, Any], key: str, operation: str, service: str) -> Any:
    """answer[key], or NotServiceAnswer naming the call (a KeyError's text, `'TaskId'`,
    said nothing of what was wrong)."""
    try:
        return answer[key]
    except (KeyError, TypeError):
        raise NotServiceAnswer(f"the answer to {operation} had no {key}: not {service}'s "
                               "answer? (a proxy or a captive portal in the way?)") from None


class LoadTimedOut(PermanentLoadError):
    """A task or job still running at `max_wait_s`: the window fails (and stays
    retryable: `streamer loads retry` follows the same task or job again)."""


class WaitClock:
    """How long each window's load has waited in this process, from its first attempt
    (the load loop retries `load` after a passing failure: that must not reset it)."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self._since: dict[str, float] = {}

    def start(self, window_id: str) -> None:
        self._since.setdefault(window_id, time.monotonic())

    def stop(self, window_id: str) -> None:
        self._since.pop(window_id, None)

    def over(self, window_id: str) -> bool:
        since = self._since.get(window_id)
        return since is not None and time.monotonic() - since > self.max_wait_s


class Loader(Protocol):
    async def load(self, window: Window, files: list[str],
                   progress: Progress) -> dict[str, Any]: ...


def poll_delays(first: float, cap: float, factor: float = 1.5) -> Iterator[float]:
    """first, first*1.5, ... up to cap, each with +-10% jitter (polls do not line up)."""
    delay = first
    while True:
        yield delay * random.uniform(0.9, 1.1)
        delay = min(delay * factor, cap)
