"""What the event loop's thread costs the native encoder's thread (issue #20, one
process): the encoder's query in a thread of its own while this thread checks 1 MiB
blocks of records as the file source does (``decode_block``) a third of the time,
with the GIL switch interval at Python's 5 ms and at the stage sink's 0.5 ms.

    python -m bench.encoder_gil [--batch 20000] [--runs 12] [--seed 1]

Per query (medians of ``--runs`` alternating pairs), from the encoder thread's
``/proc/self/task/<tid>/schedstat``: wall, on a CPU, waiting for a CPU (other work on
the machine) and asleep -- the rest, which here is the thread waiting for the GIL:
DuckDB's Python client takes it back between the steps of a query.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence

import orjson

from bench.gen import FIELDS, iter_records
from streamer.core.lines import Lines
from streamer.core.ndjson import decode_block
from streamer.sinks.stage.csv_native import NativeCsvEncoder

INTERVALS = (0.005, 0.0005)


def _schedstat() -> tuple[float, float]:
    """This thread's time on a CPU and waiting for one, seconds."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stat:
        on_cpu, waiting, _ = stat.read().split()
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def _blocks(data: bytes, size: int = 1 << 20) -> list[bytes]:
    """`data` cut after a newline about every `size` bytes."""
    blocks, start = [], 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + size) + 1 or len(data)
        blocks.append(data[start:end])
        start = end
    return blocks


def _one_query(encoder: NativeCsvEncoder, batch: Lines, out: list) -> None:
    wall, (cpu, waiting) = time.perf_counter(), _schedstat()
    encoder.encode([batch])
    cpu_after, waiting_after = _schedstat()
    wall = time.perf_counter() - wall
    out.append((wall, cpu_after - cpu, waiting_after - waiting))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    lines = [orjson.dumps(r) + b"\n" for r in iter_records(4 * args.batch, args.seed)]
    block = b"".join(lines[:args.batch])
    batch = Lines.of_block(block, args.batch, max(map(len, lines)))
    blocks = _blocks(b"".join(lines))
    encoder = NativeCsvEncoder(FIELDS)
    results: dict[float, list[tuple[float, float, float]]] = {}
    try:
        for _ in range(args.runs):
            for interval in INTERVALS:
                sys.setswitchinterval(interval)
                out: list = []
                thread = threading.Thread(target=_one_query, args=(encoder, batch, out))
                thread.start()
                index = 0
                while thread.is_alive():  # checking a third of the time
                    started = time.perf_counter()
                    decode_block(blocks[index % len(blocks)], 0, 1 << 20)
                    index += 1
                    time.sleep(2 * (time.perf_counter() - started))
                thread.join()
                results.setdefault(interval, []).append(out[0])
    finally:
        encoder.close()
    print(f"{batch.count:,} records a query, {args.runs} alternating runs, "
          f"load average {os.getloadavg()[0]:.1f}")
    for interval, runs in results.items():
        wall, cpu, waiting = (statistics.median(r[i] for r in runs) * 1000 for i in range(3))
        asleep = statistics.median((r[0] - r[1] - r[2]) * 1000 for r in runs)
        print(f"switch interval {interval * 1000:.1f} ms: wall {wall:.1f} ms, on a CPU "
              f"{cpu:.1f}, waiting for a CPU {waiting:.1f}, asleep {asleep:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
