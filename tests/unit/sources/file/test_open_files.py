"""The bound on open files: readers beyond it wait their turn, first come first served."""

from __future__ import annotations

import asyncio
import resource

from streamer.sources.file.open_files import OpenFiles, default_max_open_files


def test_default_is_256_or_half_the_soft_descriptor_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = 256 if soft == resource.RLIM_INFINITY else max(1, min(256, soft // 2))
    assert default_max_open_files() == expected
    assert OpenFiles(None).limit == expected
    assert OpenFiles(3).limit == 3


async def test_readers_beyond_the_limit_wait_in_order() -> None:
    files = OpenFiles(2)
    order: list[int] = []

    async def reader(n: int) -> None:
        await files.acquire()
        order.append(n)

    await files.acquire()
    await files.acquire()
    tasks = [asyncio.create_task(reader(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    assert (order, files.waiting) == ([], 3)
    files.release()
    await asyncio.sleep(0.01)
    files.release()
    await asyncio.sleep(0.01)
    assert (order, files.waiting) == ([0, 1], 1)
    files.release()
    await asyncio.gather(*tasks)
    assert (order, files.waiting) == ([0, 1, 2], 0)
