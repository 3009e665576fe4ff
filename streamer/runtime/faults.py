"""Fault points for crash tests: STREAMER_FAULT=<step>[:<n>] makes the process
SIGKILL itself the n-th time (default 1st) it reaches the named step.

Read once when a component is built, and checked only at rare steps (a file
completed, a load committed), never per record.
"""

from __future__ import annotations

import os
import signal

ENV = "STREAMER_FAULT"


class FaultPoint:
    def __init__(self, spec: str | None) -> None:
        step, _, count = (spec or "").partition(":")
        self._step = step or None
        self._left = int(count or 1)

    @classmethod
    def from_env(cls) -> FaultPoint:
        return cls(os.environ.get(ENV))

    def hit(self, step: str) -> None:
        if step != self._step:
            return
        self._left -= 1
        if self._left <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
