"""What every loader shares: the permanent-failure signal and polling backoff."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from streamer.sinks.stage.journal import Window

# progress(**fields): journals loader state (task ids, ...) durably before it acts on it
Progress = Callable[..., None]


class PermanentLoadError(Exception):
    """The window can never load as it is (bad data, bad types): do not retry."""


class Loader(Protocol):
    async def load(self, window: Window, files: list[str],
                   progress: Progress) -> dict[str, Any]: ...


def poll_delays(first: float, cap: float, factor: float = 1.5) -> Iterator[float]:
    """first, first*1.5, ... up to cap, each with +-10% jitter (polls do not line up)."""
    delay = first
    while True:
        yield delay * random.uniform(0.9, 1.1)
        delay = min(delay * factor, cap)
