"""Benchmark: adaptive request concurrency of the td sink (postback), against
bench/td_receiver.py in its own process, a fresh one per run.

    python -m bench.td_concurrency [--records 20000] [--capacity-records 4000]
                                   [--capacity 16 --queue 8 --service-ms 20] [--runs 3]

Rows (targets of issue 20):

* fault-free: every request answered 200 at once;
* 30% faults: 30% of requests answered 500 or dropped (at random, whatever the
  load); and the same plus 0.05% answered 429 ``Retry-After: 1``: records/s
  >= 50% of the fault-free row (paired per run);
* capacity-limited: the receiver serves K at once for --service-ms each,
  queues Q, answers 503 above: what it served per second from its first
  request to its last (the streamer's start-up and exit not counted) >= 80%
  of its capacity (K / service time), <= 5% of the requests refused over the
  second half of the run, and the most requests it saw in flight at once.

Writes bench/results/td_concurrency-<UTC>.json.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.configs import config_text, file_source, td_sink
from bench.file_to_stage import prepare_input
from bench.harness import (
    REPO_ROOT,
    BenchError,
    Result,
    Run,
    Scenario,
    format_table,
    free_port,
    paired_ratio,
    run_interleaved,
    script_parser,
    streamer_scenario,
    with_service,
    write_results,
)

FAULTS = ["--fail-rate", "0.3"]
THROTTLE = ["--throttle-rate", "0.0005"]


class ReceiverProcess:
    """bench.td_receiver in its own process, started before a run, its counters
    read after it."""

    def __init__(self, args: Sequence[str]) -> None:
        self.args = list(args)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.port = free_port()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.td_receiver", str(self.port), *self.args],
            cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), \
                    socket.create_connection(("127.0.0.1", self.port), 1):
                return
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise BenchError("td_receiver did not start")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as response:
            return orjson.loads(response.read())

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None


def receiver_scenario(name: str, tag: str, workdir: Path, input_path: Path, n: int,
                      concurrency: int, receiver_args: Sequence[str]) -> Scenario:
    """file -> td postback against a fresh receiver per run; the receiver's
    counters go into the run's facts (`receiver`)."""
    receiver = ReceiverProcess(receiver_args)
    scenario = streamer_scenario(
        name, n, workdir, tag,
        lambda d, _i: config_text(d / "data", file_source(input_path),
                                  td_sink(receiver.url, "postback", concurrency)),
        sink="td", inputs=[input_path],
        check=lambda run, _dir, _i: run.extra.update(receiver=receiver.stats()))
    return with_service(scenario, receiver.start, receiver.stop)


def receiver_facts(result: Result, key: str) -> list[Any]:
    return [run.extra["receiver"][key] for run in result.runs]


def summary_facts(runs: Sequence[Run], key: str) -> list[Any]:
    return [(run.summary or {}).get("sinks", {}).get("td", {}).get(key) for run in runs]


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--capacity-records", type=int, default=6_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--capacity", type=int, default=16)
    parser.add_argument("--queue", type=int, default=8)
    parser.add_argument("--service-ms", type=float, default=20.0)
    args = parser.parse_args()
    n, conc = args.records, args.concurrency
    post_input = prepare_input(args.workdir, n, args.seed)
    capacity_input = prepare_input(args.workdir, args.capacity_records, args.seed)
    capacity_args = ["--capacity", str(args.capacity), "--queue", str(args.queue),
                     "--service-ms", str(args.service_ms)]
    capacity_per_s = args.capacity / (args.service_ms / 1000)
    rows = [
        ("fault-free", "td-ok", post_input, n, []),
        ("30% 500/dropped", "td-faults", post_input, n, FAULTS),
        ("30% 500/dropped + 0.05% 429", "td-faults-429", post_input, n, FAULTS + THROTTLE),
        (f"capacity {args.capacity}+{args.queue} x {args.service_ms:g} ms", "td-capacity",
         capacity_input, args.capacity_records, capacity_args),
    ]
    scenarios = [receiver_scenario(name, tag, args.workdir, path, records, conc, extra)
                 for name, tag, path, records, extra in rows]
    results = run_interleaved(scenarios, args.runs)
    ok, faults, faults_429, capacity = (results[s.name] for s in scenarios)
    lines = [format_table(list(results.values())), ""]
    meta: dict[str, Any] = {"records": n, "concurrency": conc}
    for result in (faults, faults_429):
        ratio = paired_ratio(result, ok)
        lines.append(f"{result.name} / fault-free records/s: x{ratio.median:.2f} "
                     f"({ratio.min:.2f}-{ratio.max:.2f}); target >= 0.5; requests "
                     f"500: {receiver_facts(result, 'failed')}, dropped: "
                     f"{receiver_facts(result, 'dropped')}, 429: "
                     f"{receiver_facts(result, 'throttled')}, paused ms: "
                     f"{summary_facts(result.runs, 'backoff_ms')}")
        meta[f"{result.name} over fault-free"] = ratio.median
    served = sorted(receiver_facts(capacity, "served_per_s"))
    share = served[len(served) // 2] / capacity_per_s
    refused = receiver_facts(capacity, "second_half_refused_share")
    most = receiver_facts(capacity, "max_in_flight")
    lines.append(f"{capacity.name}: served {share * capacity_per_s:,.0f} records/s "
                 f"(median) = {share:.0%} of its capacity ({capacity_per_s:,.0f}/s; "
                 f"target >= 80%); "
                 f"refused over the second half: {', '.join(f'{r:.1%}' for r in refused)} "
                 f"(target <= 5%); most in flight: {most} (K + Q = "
                 f"{args.capacity + args.queue})")
    meta.update(capacity_share=share, capacity_refused_second_half=refused,
                capacity_max_in_flight=most)
    print("\n".join(lines))
    path = write_results("td_concurrency", list(results.values()), meta)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
