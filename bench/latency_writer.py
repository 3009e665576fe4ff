"""Appends records to a file at a steady rate, each stamped with its write time.

    python -m bench.latency_writer OUT TEMPLATE RATE SECONDS [--tick-ms 5]

Every ``--tick-ms`` it appends, in one ``write``, the records due since the start
(``RATE`` a second), taken in turn from the lines of ``TEMPLATE`` (NDJSON, cycled),
each with ``"wt":<wall clock microseconds>`` put first: the time just before that
write. Microseconds keep the number under 19 digits (the streamer's 64-bit guard).
Prints ``{"records": N, "seconds": S}`` on stderr at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import orjson


def template_lines(path: Path) -> list[bytes]:
    """The lines of ``path`` without their opening brace (the stamp brings it)."""
    lines = [line[1:] for line in path.read_bytes().splitlines() if line.startswith(b"{")]
    if not lines:
        raise SystemExit(f"{path}: no records")
    return lines


def write_at_rate(out: Path, lines: list[bytes], rate: float, seconds: float,
                  tick_s: float) -> int:
    written = 0
    count = len(lines)
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = time.monotonic()
        end = start + seconds
        while (now := time.monotonic()) < end:
            due = int((now - start) * rate) - written
            if due > 0:
                head = b'{"wt":%d,' % (time.time_ns() // 1000)
                chunk = b"".join(head + lines[(written + k) % count] + b"\n"
                                 for k in range(due))
                os.write(fd, chunk)
                written += due
            time.sleep(max(0.0, min(tick_s, end - time.monotonic())))
    finally:
        os.close(fd)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("template", type=Path)
    parser.add_argument("rate", type=float, help="records a second")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--tick-ms", type=float, default=5.0)
    args = parser.parse_args()
    records = write_at_rate(args.out, template_lines(args.template), args.rate,
                            args.seconds, args.tick_ms / 1000)
    print(orjson.dumps({"records": records, "seconds": args.seconds}).decode(),
          file=sys.stderr)


if __name__ == "__main__":
    main()
