"""Benchmark: latency from the moment a line is written to the moment its sink
delivered it, on a followed file fed at half the measured maximum rate.

    python -m bench.latency [--seconds 10] [--share 0.5] [--rows postback,ingest,stage,...]
                            [--probe-records 100000] [--throttle-at 3 --throttle-for 2]
                            [--linger-ms 1000] [--stage-file-age-s 1] [--poll-ms 0]
                            [--warmup-s 2] [--runs 1]

For each row, in the same run:

1. **the maximum**: ``streamer run`` (one process, ``follow = false``) reads
   ``--probe-records`` records to the same sink; its rate is records over the
   streamer's own ``elapsed_s`` (start-up of the interpreter left out);
2. **the latency run**: a fresh ``streamer run`` follows an empty file (``follow =
   true``, the default batch settings but ``--linger-ms``, the default poll interval
   unless ``--poll-ms``) while
   ``bench/latency_writer.py``, in its own process, appends records at ``--share`` of
   that maximum for ``--seconds``, each stamped with its write time (``"wt"``, wall
   clock microseconds); once every record is delivered (or 60 s later) SIGTERM.

Delivery is seen from outside the streamer:

* TD postback and ingest: ``bench/td_receiver.py --latency`` in its own process
  subtracts each record's ``wt`` from the time it served its request;
* local stage: this process lists the stage directory every 10 ms; a file is complete
  when it appears there (after its fsync and rename), and its rows' ``wt`` are
  subtracted from the time it was seen (so up to 10 ms late);
* ``... throttled`` rows: the receiver answers every request 429 ``Retry-After: 1``
  from ``--throttle-at`` seconds after its first request for ``--throttle-for``
  seconds; the writer keeps writing at the unthrottled row's rate.

Reports count, p50, p90, p99 and max in ms, and for the TD rows whether p99 is within
``linger_ms`` + 100 ms (issue #20). Writes bench/results/latency-<UTC>.json.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.configs import config_text, toml_str
from bench.file_to_stage import prepare_input
from bench.gen import FIELDS
from bench.harness import (
    REPO_ROOT,
    BenchError,
    free_port,
    machine_info,
    run_measured,
    script_parser,
    streamer_executable,
    utc_stamp,
)
from bench.td_concurrency import ReceiverProcess
from bench.td_receiver import after_warmup, percentiles_ms

ROWS = ("postback", "ingest", "stage", "postback throttled", "ingest throttled")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
STAMP = b'{"wt":1700000000000000,'  # a write time's width, for the probe's records


@dataclass
class Options:
    workdir: Path
    seed: int = 1
    seconds: float = 10.0
    share: float = 0.5
    probe_records: int = 100_000
    linger_ms: int = 1000
    stage_file_age_s: float = 1.0
    throttle_at: float = 3.0
    throttle_for: float = 2.0
    concurrency: int = 64
    warmup_s: float = 2.0
    poll_ms: int = 0  # the file source's poll_interval_ms; 0: its default (250)


@dataclass
class RowResult:
    row: str
    max_rate: float  # records/s of the one-shot probe
    rate: float  # the writer's
    written: int
    latency_ms: dict[str, float]
    steady_ms: dict[str, float]  # of the records written warmup_s or more after the first
    cpu_s: float  # the followed run's streamer
    facts: dict[str, Any] = field(default_factory=dict)


def sink_section(kind: str, target: str, opts: Options) -> str:
    """The sink of a row: ``target`` is the receiver's URL or the stage directory."""
    batch = f"[sinks.out.batch]\nlinger_ms = {opts.linger_ms}\n"
    if kind == "stage":
        return ("[sinks.out]\ntype = \"stage\"\n"
                f"url = {toml_str(Path(target).as_uri() + '/')}\n"
                f"columns = {orjson.dumps(['wt', *FIELDS]).decode()}\n"
                f"max_file_age_s = {opts.stage_file_age_s}\n"
                '[sinks.out.load]\ntype = "none"\n' + batch)
    return ("[sinks.out]\ntype = \"td\"\n"
            f"api = {toml_str(kind)}\nendpoint = {toml_str(target)}\n"
            'database = "bench_db"\ntable = "bench_table"\nwrite_key = "bench-key"\n'
            f"concurrency = {opts.concurrency}\n" + batch)


def source_section(path: Path, follow: bool, poll_ms: int = 0) -> str:
    poll = f"poll_interval_ms = {poll_ms}\n" if poll_ms else ""
    return (f'type = "file"\npaths = [{toml_str(str(path))}]\n'
            f'follow = {"true" if follow else "false"}\nread_from = "beginning"\n{poll}')


def stamped_template(opts: Options) -> tuple[Path, Path]:
    """(the generator's records, which the writer stamps; the probe's input: the same
    records with a ``wt`` field first, as the writer's records have)."""
    source = prepare_input(opts.workdir, opts.probe_records, opts.seed)
    path = opts.workdir / f"latency-probe-n{opts.probe_records}-s{opts.seed}.ndjson"
    if not path.exists():
        lines = source.read_bytes().splitlines()
        path.write_bytes(b"".join(STAMP + line[1:] + b"\n" for line in lines))
    return source, path


def probe_rate(kind: str, template: Path, run_dir: Path, target: str, opts: Options) -> float:
    """Records/s of a one-shot run of the template to the row's sink."""
    config = run_dir / "probe.toml"
    config.write_text(config_text(run_dir / "probe-data", source_section(template, False),
                                  sink_section(kind, target, opts)), encoding="utf-8")
    run = run_measured([streamer_executable(), "run", "-c", config], cwd=REPO_ROOT,
                       timeout=600)
    summary = run.summary or {}
    delivered = summary.get("sinks", {}).get("out", {}).get("delivered")
    if not run.ok or delivered != opts.probe_records:
        raise BenchError(f"{kind} probe: exit {run.returncode}, delivered {delivered!r}\n"
                         f"{run.stderr_tail}")
    return opts.probe_records / float(summary.get("elapsed_s") or run.wall_s)


class StageWatcher:
    """Lists the stage directory every 10 ms; each complete file's rows' ``wt`` are
    subtracted from the time it was first seen."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.write_times_us: list[int] = []
        self.latencies_us: list[int] = []
        self._seen: set[Path] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stage-watcher", daemon=True)

    def __enter__(self) -> StageWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                for path in self.directory.glob("*/part-*.csv"):
                    if path not in self._seen and not path.parent.name.startswith("_"):
                        self._seen.add(path)
                        self._read(path, time.time_ns() // 1000)
            self._stop.wait(0.01)

    def _read(self, path: Path, seen_us: int) -> None:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                if row and row[0].isdigit():  # not the header
                    self.write_times_us.append(int(row[0]))
                    self.latencies_us.append(seen_us - int(row[0]))


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"streamer exited with {proc.returncode} before it was up")
        with contextlib.suppress(OSError):
            NO_PROXY.open(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return
        time.sleep(0.05)
    raise BenchError("streamer's API did not answer")


def follow_run(kind: str, rate: float, template: Path, run_dir: Path, target: str,
               delivered: Any, opts: Options) -> tuple[int, float, dict[str, Any]]:
    """The followed run: (records written, the streamer's CPU s, its summary)."""
    followed = run_dir / "followed.ndjson"
    followed.touch()
    port = free_port()
    config = run_dir / "follow.toml"
    config.write_text(config_text(run_dir / "data", source_section(followed, True, opts.poll_ms),
                                  sink_section(kind, target, opts), metrics_port=port),
                      encoding="utf-8")
    with open(run_dir / "streamer.stderr", "wb") as err:
        proc = subprocess.Popen([streamer_executable(), "run", "-c", str(config)],
                                cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_healthy(port, proc)
        writer = subprocess.run(
            [sys.executable, "-m", "bench.latency_writer", str(followed), str(template),
             f"{rate:.1f}", str(opts.seconds)],
            cwd=REPO_ROOT, capture_output=True, check=True, timeout=opts.seconds + 60)
        written = int(orjson.loads(writer.stderr.strip().splitlines()[-1])["records"])
        deadline = time.monotonic() + 60
        while delivered() < written and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    tail = (run_dir / "streamer.stderr").read_bytes().strip().splitlines()
    summary = orjson.loads(tail[-1]) if tail and tail[-1].startswith(b"{") else {}
    return written, usage.ru_utime + usage.ru_stime, summary


def measure_row(row: str, opts: Options, rates: dict[str, float]) -> RowResult:
    kind, throttled = row.split()[0], row.endswith("throttled")
    run_dir = opts.workdir / f"latency-{row.replace(' ', '-')}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    template, probe_input = stamped_template(opts)
    try:
        if kind not in rates:  # a throttled row writes at its unthrottled row's rate
            if kind == "stage":
                rates[kind] = probe_rate(kind, probe_input, run_dir,
                                         str(run_dir / "probe-stage"), opts)
            else:
                receiver = ReceiverProcess([])
                receiver.start()
                try:
                    rates[kind] = probe_rate(kind, probe_input, run_dir, receiver.url, opts)
                finally:
                    receiver.stop()
        rate = rates[kind] * opts.share
        facts: dict[str, Any] = {}
        if kind == "stage":
            with StageWatcher(run_dir / "stage") as watcher:
                written, cpu, summary = follow_run(
                    kind, rate, template, run_dir, str(run_dir / "stage"),
                    lambda: len(watcher.latencies_us), opts)
            latency = percentiles_ms(watcher.latencies_us)
            steady = percentiles_ms(after_warmup(watcher.write_times_us,
                                                 watcher.latencies_us, opts.warmup_s))
        else:
            extra = ["--throttle-at", str(opts.throttle_at),
                     "--throttle-for", str(opts.throttle_for)] if throttled else []
            receiver = ReceiverProcess(["--latency", "--warmup-s", str(opts.warmup_s),
                                        *extra])
            receiver.start()
            try:
                written, cpu, summary = follow_run(
                    kind, rate, template, run_dir, receiver.url,
                    lambda: receiver.stats()["latency_ms"]["count"], opts)
                stats = receiver.stats()
            finally:
                receiver.stop()
            latency = stats.pop("latency_ms")
            steady = stats.pop("steady_latency_ms")
            facts["receiver"] = stats
        facts["summary"] = summary
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    if latency.get("count") != written:
        raise BenchError(f"{row}: {written} records written, {latency.get('count')} delivered")
    return RowResult(row, rates[kind], rate, written, latency, steady, cpu, facts)


def verdict(result: RowResult, opts: Options) -> str:
    if result.row.split()[0] == "stage":
        return ""
    bound = opts.linger_ms + 100
    met = [result.latency_ms["p99"] <= bound, result.steady_ms["p99"] <= bound]
    return f"p99 <= {bound} ms: {'/'.join('met' if m else 'missed' for m in met)}"


def markdown(results: Sequence[RowResult], opts: Options) -> list[str]:
    lines = ["| row | max records/s (one-shot) | written at records/s | records | "
             f"p50 / p90 / p99 / max ms: all (after {opts.warmup_s:g} s) | cpu s | TD target "
             "(all/after) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        figures = [" / ".join(f"{lat[key]:,.0f}" for key in ("p50", "p90", "p99", "max"))
                   for lat in (r.latency_ms, r.steady_ms)]
        lines.append(f"| {r.row} | {r.max_rate:,.0f} | {r.rate:,.0f} | {r.written:,} | "
                     f"{figures[0]} ({figures[1]}) | {r.cpu_s:.1f} | {verdict(r, opts)} |")
    return lines


def run_rows(rows: Sequence[str], opts: Options, runs: int = 1,
             say: Any = None) -> list[RowResult]:
    """Every row ``runs`` times (a fresh maximum each time: the machine's load moves)."""
    out: list[RowResult] = []
    for i in range(runs):
        rates: dict[str, float] = {}
        for row in rows:
            result = measure_row(row, opts, rates)
            out.append(result)
            if say:
                lat = result.latency_ms
                say(f"  run {i + 1}/{runs} latency {row:<20} max {result.max_rate:>9,.0f}/s "
                    f"at {result.rate:>9,.0f}/s  p50 {lat['p50']:7.0f} ms  p99 "
                    f"{lat['p99']:7.0f} ms  max {lat['max']:7.0f} ms  (after warm-up p99 "
                    f"{result.steady_ms['p99']:7.0f} ms)")
    return out


def median_rows(results: Sequence[RowResult]) -> list[RowResult]:
    """One row per name: the median of each figure over its runs."""
    by_row: dict[str, list[RowResult]] = {}
    for r in results:
        by_row.setdefault(r.row, []).append(r)
    merged = []
    for row, group in by_row.items():
        lat, steady = ({key: statistics.median(getattr(r, attr)[key] for r in group)
                        for key in ("count", "p50", "p90", "p99", "max")}
                       for attr in ("latency_ms", "steady_ms"))
        merged.append(RowResult(row, statistics.median(r.max_rate for r in group),
                                statistics.median(r.rate for r in group),
                                int(statistics.median(r.written for r in group)), lat,
                                steady, statistics.median(r.cpu_s for r in group)))
    return merged


def main() -> None:
    parser = script_parser(__doc__)
    parser.set_defaults(runs=1)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"of: {', '.join(ROWS)}")
    defaults = Options(Path())
    for name in ("seconds", "share", "probe_records", "linger_ms", "stage_file_age_s",
                 "throttle_at", "throttle_for", "concurrency", "warmup_s", "poll_ms"):
        value = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if unknown := sorted(set(rows) - set(ROWS)):
        parser.error(f"unknown rows {unknown}")
    opts = Options(args.workdir.resolve(), args.seed, args.seconds, args.share,
                   args.probe_records, args.linger_ms, args.stage_file_age_s,
                   args.throttle_at, args.throttle_for, args.concurrency, args.warmup_s,
                   args.poll_ms)
    opts.workdir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    results = run_rows(rows, opts, args.runs,
                       lambda s: print(s, file=sys.stderr, flush=True))
    print("\n".join(markdown(median_rows(results), opts)))
    out = REPO_ROOT / "bench" / "results" / f"latency-{utc_stamp()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"machine": machine, "options": {k: str(v) for k, v in vars(opts).items()},
           "runs": [vars(r) for r in results]}
    out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
