"""Runs `streamer run` for a never-ending source until N records are delivered.

    python -m bench.live_driver CONFIG METRICS_PORT N [--socket HOST:PORT --input FILE
                                                      --connections K --framing newline]

With --socket it also plays K producers sending the input file's lines (split
round-robin by blocks) over K connections.  When the stage sink has delivered N
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
import time
import urllib.request

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


async def produce(address: str, path: str, connections: int, framing: str) -> None:
    host, _, port = address.rpartition(":")
    with open(path, "rb") as fh:
        lines = fh.read().splitlines(keepends=True)
    shares = [lines[i::connections] for i in range(connections)]

    async def send(share: list[bytes]) -> None:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection(host, int(port))
                break
            except OSError:
                await asyncio.sleep(0.05)
        for start in range(0, len(share), 2000):
            block = share[start:start + 2000]
            if framing == "length_prefixed":
                data = b"".join(struct.pack(">I", len(x)) + x for x in block)
            else:
                data = b"".join(block)
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(send(share) for share in shares))


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
    proc = subprocess.Popen([sys.executable, "-m", "streamer", "run", "-c", args.config],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if args.socket:
            asyncio.run(produce(args.socket, args.input, args.connections, args.framing))
        deadline = time.monotonic() + args.timeout
        while delivered(args.metrics_port) < args.records:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"streamer stopped or timed out before {args.records}")
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    sys.stderr.write(err.decode(errors="replace").strip().splitlines()[-1] + "\n")


if __name__ == "__main__":
    main()
