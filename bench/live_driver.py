"""Runs `streamer run` for a never-ending source until N records are delivered.

    python -m bench.live_driver CONFIG METRICS_PORT N [--socket HOST:PORT --input FILE
                                                      --connections K --framing newline]

With --socket it also plays K producers sending the input file's lines (streamed in
~512 KiB blocks dealt round-robin) over K connections.  When the stage sink has delivered N
records it sends SIGTERM, waits, and prints the streamer's summary line on stderr
(the harness reads it).  Measuring this process tree measures the streamer plus a
thin driver.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def delivered(port: int) -> float:
    try:
        text = NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return -1
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "streamer_sink_delivered_total":
                return sample.value
    return -1


def iter_blocks(path: str | Path, size: int = 1 << 19) -> Iterator[bytes]:
    """The file in blocks of about ``size`` bytes, each ending at the end of a line."""
    rest = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(size):
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                rest += chunk
                continue
            yield rest + chunk[:cut]
            rest = chunk[cut:]
    if rest:
        yield rest


async def _connect(host: str, port: int) -> asyncio.StreamWriter:
    for _ in range(100):
        try:
            return (await asyncio.open_connection(host, port))[1]
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit(f"cannot connect to {host}:{port}")


async def produce(address: str, path: str, connections: int, framing: str) -> None:
    """Send the file's lines over ``connections`` connections, blocks dealt round-robin.

    The file is streamed (a few blocks per connection in memory), so the driver stays
    small next to the streamer it measures.
    """
    host, _, port = address.rpartition(":")
    queues: list[asyncio.Queue[bytes | None]] = [
        asyncio.Queue(maxsize=4) for _ in range(connections)
    ]

    async def send(queue: asyncio.Queue[bytes | None]) -> None:
        writer = await _connect(host, int(port))
        while (block := await queue.get()) is not None:
            if framing == "length_prefixed":
                block = b"".join(struct.pack(">I", len(x)) + x for x in block.splitlines())
            writer.write(block)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def deal() -> None:
        for k, block in enumerate(iter_blocks(path)):
            await queues[k % connections].put(block)
        for queue in queues:
            await queue.put(None)

    async with asyncio.TaskGroup() as group:
        for queue in queues:
            group.create_task(send(queue))
        group.create_task(deal())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("metrics_port", type=int)
    parser.add_argument("records", type=int)
    parser.add_argument("--socket")
    parser.add_argument("--input")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--framing", default="newline")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty log cannot block
        proc = subprocess.Popen([sys.executable, "-m", "streamer", "run", "-c", args.config],
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            if args.socket:
                asyncio.run(produce(args.socket, args.input, args.connections, args.framing))
            deadline = time.monotonic() + args.timeout
            while delivered(args.metrics_port) < args.records:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"streamer stopped or timed out before {args.records}")
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    sys.stderr.write((lines[-1] if lines else "") + "\n")


if __name__ == "__main__":
    main()
