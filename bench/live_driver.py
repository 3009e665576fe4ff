"""Runs `streamer run` for a never-ending source until N records are delivered.

    python -m bench.live_driver CONFIG METRICS_PORT N [--until delivered|received]
        [--socket HOST:PORT --input FILE --connections K --framing newline --ack]

With --socket it also starts the producers, `bench/socket_sender.py` in a process of
its own (K connections sending the input's blocks).  When the stage sink has delivered
N records (``--until received``: taken them into its buffer; SIGTERM then drains them,
as the end of a one-shot file run does) it sends SIGTERM, waits, and prints the
streamer's summary line on stderr (the harness reads it) with a ``bench`` object
added: the streamer's own CPU seconds and peak RSS, and the sender's CPU seconds.
Measuring this process tree measures the streamer plus a thin driver and the sender.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sink_count(port: int, what: str = "delivered") -> float:
    """``streamer_sink_<what>_total`` from the streamer's /metrics (-1 if unreachable)."""
    name = f"streamer_sink_{what}_total"
    try:
        text = NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return -1
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("metrics_port", type=int)
    parser.add_argument("records", type=int)
    parser.add_argument("--socket")
    parser.add_argument("--input")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--framing", default="newline")
    parser.add_argument("--ack", action="store_true")
    parser.add_argument("--until", choices=("delivered", "received"), default="delivered")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    sender: subprocess.Popen | None = None
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty log cannot block
        proc = subprocess.Popen([sys.executable, "-m", "streamer", "run", "-c", args.config],
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            if args.socket:
                sender = subprocess.Popen(
                    [sys.executable, "-m", "bench.socket_sender", args.socket, args.input,
                     "--connections", str(args.connections), "--framing", args.framing,
                     *(["--ack"] if args.ack else [])], stdout=subprocess.PIPE)
                # nothing to watch before the last byte is sent ("sent", or EOF: failed)
                sender.stdout.readline()  # type: ignore[union-attr]
            deadline = time.monotonic() + args.timeout
            while sink_count(args.metrics_port, args.until) < args.records:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"streamer stopped or timed out before {args.records}")
                time.sleep(0.01 if args.socket else 0.05)
            proc.send_signal(signal.SIGTERM)
            streamer_cpu, streamer_rss = _wait_cpu(proc, 120)
            sender_cpu = _wait_cpu(sender, 60)[0] if sender is not None else 0.0
        finally:
            for child in (proc, sender):
                if child is not None and child.poll() is None:
                    child.kill()
        if sender is not None and sender.returncode:
            raise SystemExit(f"the socket sender failed (exit code {sender.returncode})")
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    last = lines[-1] if lines else ""
    if last.startswith("{"):
        summary = json.loads(last)
        summary["bench"] = {"streamer_cpu_s": streamer_cpu, "sender_cpu_s": sender_cpu,
                            "streamer_peak_rss_bytes": streamer_rss}
        last = json.dumps(summary)
    sys.stderr.write(last + "\n")


def _wait_cpu(proc: subprocess.Popen, timeout: float) -> tuple[float, int]:
    """Wait for ``proc`` to exit (killed after ``timeout`` s); its user + system CPU
    and its peak RSS (bytes, the kernel's high-water mark)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024
        if time.monotonic() > deadline:
            proc.kill()
            deadline = float("inf")
        time.sleep(0.01)


if __name__ == "__main__":
    main()
