"""Baseline: a bare aiohttp + uvloop loop posting every NDJSON line of a file as
one request (the postback shape), `concurrency` requests in flight.

    python -m bench.post_baseline URL FILE CONCURRENCY
prints one JSON line {"records": N, "seconds": S} on stderr."""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
import orjson
import uvloop


async def post_all(url: str, lines: list[bytes], concurrency: int) -> None:
    headers = {"Content-Type": "application/json", "X-TD-Write-Key": "bench"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        position = iter(lines)

        async def worker() -> None:
            for body in position:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"status {resp.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> None:
    url, path, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(path, "rb") as fh:
        lines = fh.read().splitlines()
    started = time.perf_counter()
    uvloop.run(post_all(url, lines, concurrency))
    sys.stderr.write(orjson.dumps({"records": len(lines),
                                   "seconds": time.perf_counter() - started}).decode() + "\n")


if __name__ == "__main__":
    main()
