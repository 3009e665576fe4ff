"""Runs `streamer run` instances on Kafka until N records are delivered
(bench/live_driver.py is the socket runs' driver).

    python -m bench.kafka_driver CONFIG METRICS_PORT N [--also CONFIG:PORT ...] [--when-read]
                                 [--broker-pid PID]

When the stage sink has delivered N records it sends SIGTERM, waits, and prints the
streamer's summary line on stderr (the harness reads it).  Measuring this process
tree measures the streamer plus a thin driver.

--also runs more instances (one more config and metrics port each; Kafka: members of
the same group) and counts records over all of them; the summary printed is their
sum.  --when-read sends SIGTERM once the sinks have taken N records into their
buffers (the stop drains them, as a file source's end does) instead of waiting
for the sinks' own closing (a stage's max_file_age_s); not once the sources
counted N read: a record counted but still waiting for room in a full buffer is
left to the next run by the stop (it was never committed).  The summary gains a "driver" object: the
streamers' own CPU seconds (without the driver's), their wall time (from their
start to their exit: without the driver's own start-up, which the harness's wall of
this process includes), when the first and the last record was read, and the
longest Kafka group join the instances reported (streamer_kafka_join_seconds); with
--broker-pid, the CPU seconds that process (the broker) used from the streamers'
start until they had taken every record.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def delivered(port: int) -> float:
    return readings(port).get("streamer_sink_delivered_total", -1)


def readings(port: int) -> dict[str, float]:
    """The streamer's metric samples by name (summed over labels); {} while it is down."""
    try:
        text = NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def poll_interval(left: float, done: float, seconds: float) -> float:
    """Half the time the rest should take at the rate so far, within 20-250 ms: a
    scrape of /metrics costs the streamer 1-2 ms of CPU, and polling every 50 ms
    through a run of 20 s (a loaded machine) cost it 2-3 us a record."""
    if done <= 0 or seconds <= 0:
        return 0.25
    return min(0.25, max(0.02, left / (done / seconds) / 2))


def merged(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Several instances' summary lines as one: numbers summed, the rest of the first."""
    out = dict(summaries[0])
    for key, value in out.items():
        if isinstance(value, dict):
            out[key] = merged([s.get(key, {}) for s in summaries])
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = (max if key == "elapsed_s" else sum)(s.get(key, 0) for s in summaries)
    return out


def cpu_seconds(pid: int) -> float:
    """A live process's user + system CPU seconds (0 once it is gone)."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("metrics_port", type=int)
    parser.add_argument("records", type=int)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--also", action="append", default=[], metavar="CONFIG:PORT")
    parser.add_argument("--when-read", action="store_true")
    parser.add_argument("--broker-pid", type=int, default=0)
    args = parser.parse_args()
    instances = [(args.config, args.metrics_port)] + [
        (c, int(p)) for c, _, p in (a.rpartition(":") for a in args.also)]
    broker_start = cpu_seconds(args.broker_pid) if args.broker_pid else 0.0
    spawned = time.monotonic()
    with contextlib.ExitStack() as stack:
        runs = []
        for config, port in instances:
            err = stack.enter_context(tempfile.TemporaryFile())  # a file: no blocking
            proc = subprocess.Popen([sys.executable, "-m", "streamer", "run", "-c", config],
                                    stdout=subprocess.DEVNULL, stderr=err)
            stack.callback(lambda p=proc: p.poll() is None and p.kill())
            runs.append((proc, port, err))
        started = time.monotonic()
        count = "streamer_sink_received_total" if args.when_read else \
            "streamer_sink_delivered_total"
        first_read = all_read = None
        join = 0.0
        while True:
            seen = [readings(port) for _, port, _ in runs]
            read = sum(r.get("streamer_source_records_total", 0) for r in seen)
            now = time.monotonic() - started
            if read and first_read is None:
                first_read = now
            if read >= args.records and all_read is None:
                all_read = now
            join = max([join, *(r.get("streamer_kafka_join_seconds", 0) for r in seen)])
            done = sum(r.get(count, 0) for r in seen)
            if done >= args.records:
                break
            if any(p.poll() is not None for p, _, _ in runs) or now > args.timeout:
                raise SystemExit(f"streamer stopped or timed out before {args.records}")
            time.sleep(poll_interval(args.records - done, done, now - (first_read or now)))
        broker_cpu = cpu_seconds(args.broker_pid) - broker_start if args.broker_pid else None
        summaries, cpu = [], 0.0
        for proc, _, _ in runs:
            proc.send_signal(signal.SIGTERM)
        for proc, _, err in runs:
            _, _, usage = os.wait4(proc.pid, 0)
            proc.returncode = 0
            cpu += usage.ru_utime + usage.ru_stime
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            try:
                summaries.append(orjson.loads(lines[-1]))
            except (IndexError, orjson.JSONDecodeError):
                sys.stderr.write((lines[-1] if lines else "") + "\n")
                raise SystemExit(1) from None
        streamer_wall = time.monotonic() - spawned
    summary = merged(summaries)
    summary["driver"] = {"streamer_cpu_s": cpu, "join_s": join, "first_read_s": first_read,
                         "all_read_s": all_read, "instances": len(runs),
                         "streamer_wall_s": streamer_wall}
    if broker_cpu is not None:
        summary["driver"]["broker_cpu_s"] = broker_cpu
    sys.stderr.write(orjson.dumps(summary).decode() + "\n")


if __name__ == "__main__":
    main()
