"""Producers for the socket benchmarks, in a process of their own.

    python -m bench.socket_sender HOST:PORT FILE [--connections 8]
                                  [--framing newline|length_prefixed] [--ack]

FILE holds the records as they go on the wire: NDJSON lines (newline framing) or the
frames of ``framed_copy`` (length-prefixed: one frame per line, built once before the
runs, so that no framing work is measured).  It is cut into blocks of about 1 MiB of
whole lines or frames, dealt round robin to ``--connections`` connections; each
connection is a thread doing blocking ``sendall`` of its blocks (the kernel copies,
the GIL is released), so the sender is never what limits the streamer.

Once every connection has sent its last block it prints ``sent`` (the driver then
watches the streamer more closely).  ``--ack``: after its last block a connection
half-closes and reads the server's
acknowledgements (4-byte cumulative frame counts) until one covers every frame it
sent; a connection closed before that is a failure (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

BLOCK_BYTES = 1 << 20
HEADER = struct.Struct(">I")


def framed_copy(path: Path) -> Path:
    """``path``'s lines as length-prefixed frames (cached beside it), and a sidecar
    ``.blocks`` with the offsets where blocks of about ``BLOCK_BYTES`` of whole frames
    start."""
    framed = path.with_suffix(".frames")
    if framed.exists() and framed.with_suffix(".blocks").exists():
        return framed
    blocks = [[0, 0]]  # [offset, frames] of each block
    tmp = framed.with_suffix(".frames.tmp")
    with open(path, "rb") as src, open(tmp, "wb") as out:
        written = 0
        for line in src:
            payload = line.rstrip(b"\n")
            out.write(HEADER.pack(len(payload)) + payload)
            written += 4 + len(payload)
            blocks[-1][1] += 1
            if written - blocks[-1][0] >= BLOCK_BYTES:
                blocks.append([written, 0])
    if len(blocks) > 1 and not blocks[-1][1]:
        blocks.pop()
    framed.with_suffix(".blocks").write_text(json.dumps(blocks))
    os.replace(tmp, framed)
    return framed


def block_spans(path: Path, framing: str) -> list[tuple[int, int, int]]:
    """(offset, length, frames) of each block of whole lines or frames (frames: 0 for
    lines)."""
    size = path.stat().st_size
    if framing == "length_prefixed":
        blocks = json.loads(path.with_suffix(".blocks").read_text())
    else:
        blocks = [(cut, 0) for cut in _line_cuts(path, size)]
    ends = [offset for offset, _ in blocks[1:]] + [size]
    return [(offset, end - offset, frames)
            for (offset, frames), end in zip(blocks, ends, strict=True)]


def _line_cuts(path: Path, size: int) -> Iterator[int]:
    yield 0
    with open(path, "rb") as fh:
        position = 0
        while position + BLOCK_BYTES < size:
            fh.seek(position + BLOCK_BYTES)
            tail = fh.read(64 << 10)
            newline = tail.find(b"\n")
            if newline < 0:  # a very long line: the block grows to its end
                position += BLOCK_BYTES + len(tail)
                continue
            position += BLOCK_BYTES + newline + 1
            if position < size:
                yield position


def connect(host: str, port: int, timeout: float = 10.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection((host, port))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def send(host: str, port: int, fd: int, spans: list[tuple[int, int, int]],
         ack: bool, sent: threading.Barrier) -> None:
    frames = sum(span[2] for span in spans)
    with connect(host, port) as sock:
        for offset, length, _ in spans:
            sock.sendall(os.pread(fd, length, offset))
        sent.wait()
        if not ack or not frames:
            return
        sock.shutdown(socket.SHUT_WR)
        acked = -1
        pending = b""
        while acked != frames & 0xFFFFFFFF:
            data = sock.recv(1 << 16)
            if not data:
                raise RuntimeError(f"connection closed with {acked} of {frames} frames acked")
            pending += data
            whole = len(pending) // 4 * 4
            if whole:
                (acked,) = HEADER.unpack_from(pending, whole - 4)
                pending = pending[whole:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("input", type=Path)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--framing", choices=("newline", "length_prefixed"), default="newline")
    parser.add_argument("--ack", action="store_true")
    args = parser.parse_args()
    host, _, port = args.address.rpartition(":")
    spans = block_spans(args.input, args.framing)
    fd = os.open(args.input, os.O_RDONLY)
    errors: list[BaseException] = []
    sent = threading.Barrier(args.connections, action=lambda: print("sent", flush=True))

    def run(k: int) -> None:
        try:
            send(host, int(port), fd, spans[k :: args.connections], args.ack, sent)
        except BaseException as exc:  # reported below: exit 1
            errors.append(exc)
            sent.abort()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        sys.exit(f"socket sender failed: {errors[0]!r}")


if __name__ == "__main__":
    main()
