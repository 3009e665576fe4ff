"""Waiting for a condition, for a running daemon to log something, or (in async tests)
for a polled value to reach a state.

The default timeouts are bounds on the host, not checks: a condition that holds is
returned on as soon as it holds; on a loaded host (xdist workers, other suites, CI) a
daemon's start-up alone took 10-20 s, so the bounds leave minutes."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tests.helpers.process import Daemon

T = TypeVar("T")


def wait_until(predicate: Callable[[], object], timeout: float = 120, interval: float = 0.05,
               what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def wait_for_log(daemon: Daemon, pattern: str, timeout: float = 120,
                 count: int = 1) -> list[re.Match[str]]:
    """Wait until `pattern` matched `count` times in the daemon's log."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        matches = list(regex.finditer(daemon.log))
        if len(matches) >= count:
            return matches
        if daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited ({daemon.proc.returncode}):\n{daemon.log[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} in the log after {timeout}s:\n"
                                 f"{daemon.log[-3000:]}")
        time.sleep(0.05)


async def poll_until(fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool],
                     timeout: float = 60.0, interval: float = 0.05) -> T:
    """Await `fetch()` again and again until `done` holds for what it returned; that."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fetch()
        if done(value):
            return value
        assert asyncio.get_running_loop().time() < deadline, value
        await asyncio.sleep(interval)
