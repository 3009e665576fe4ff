"""How many files a file source holds open at once (`max_open_files`).

Each open file holds a descriptor; with thousands of matched files the process
would hit its RLIMIT_NOFILE.  A reader takes a slot before it opens its file
and gives it back when it closes it; readers beyond the limit wait their turn
(first come, first served), and a followed file at its end gives its slot up
while others wait (source.py).
"""

from __future__ import annotations

import asyncio
import resource

DEFAULT_MAX_OPEN_FILES = 256


def default_max_open_files() -> int:
    """256, or half the soft descriptor limit when that is lower (sockets,
    stage files and the DuckDB database need the rest)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX_OPEN_FILES
    return max(1, min(DEFAULT_MAX_OPEN_FILES, soft // 2))


class OpenFiles:
    def __init__(self, limit: int | None) -> None:
        self.limit = limit or default_max_open_files()
        self._slots = asyncio.Semaphore(self.limit)
        self.waiting = 0  # readers waiting for a slot

    async def acquire(self) -> None:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self._slots.release()
