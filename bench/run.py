"""Every benchmark and its baselines in one run: ``python -m bench.run`` (``make bench``).

    python -m bench.run [--records 1000000] [--repeat 3] [--scenarios a,b] [--full]
                        [--postback-records 200000] [--connections 8] [--concurrency 64]
                        [--wrk-seconds 5] [--seed 1] [--workdir DIR] [--results-dir DIR]

Generates the input (bench/gen.py, cached in the workdir), starts what the chosen
scenarios need (moto S3 server, HTTP sink, tansu broker), then runs every scenario and
baseline ``--repeat`` times, alternating (bench/harness.run_interleaved), each in its own
measured process tree.  Writes bench/results/<UTC date>.json, .md and .png; prints the
markdown table.  Scenarios (``--scenarios``, default all but the two 10M ones):

  stage        file -> local stage, --workers  vs tight loop   target >= 2.5x
  stage_1w     file -> local stage, 1 process  vs tight loop
  stage_mapped file -> stage, a 20-column mapping (nested paths, two timestamps),
               1 process                       vs stage_1w     target >= 0.9x
  s3           file -> S3 stage (moto)         vs stage_1w     target >= 0.7x
  parquet      file -> local Parquet stage     vs stage_1w     target >= 0.9x
  td_postback  file -> td postback, --workers  vs bare aiohttp target >= 1.5x
  td_ingest    file -> td ingest, --workers    vs tight loop   target >= 2.5x
  kafka        kafka -> stage (tansu)          vs stage_1w
  socket       socket -> stage (newline)       vs stage_api    target >= 0.8x
  socket_acks  socket -> stage (length-prefixed frames, acks) vs stage_api, >= 0.8x
               (stage_api: file -> stage, 1 process, with the API on as the socket runs
               need it for their driver: bench/socket_to_stage.py)
  stage_10m    file -> stage, 10,000,000 records, 1 process: target peak RSS <= 150 MiB
  stage_10m_w  file -> stage, 10,000,000 records, --workers
               (the 10M ones only with --full or named)
  latency      bench/latency.py after the others: write -> delivery p50/p99/max on a
               followed file written at half the measured maximum (td postback,
               ingest, local stage; td throttled), target p99 <= linger_ms + 100 ms
  peers        Fluent Bit ($FLUENT_BIT, else fluent-bit on PATH; skipped without):
               tail -> CSV vs tight loop, tail -> HTTP vs the streamer's file -> td
               ingest to the same receiver (bench/peers/), to complete output

With ``--workers N`` (default 2, the cores here) the file input is cut into N files and
the streamer runs ``workers = N``; the HTTP concurrency is divided between the workers so
that as many requests are in flight as in the bare loop.

Baselines run when a chosen scenario needs them: the tight loop and the DuckDB COPY
ceiling (bench/baselines.py), the local stage, the bare aiohttp + uvloop posting loop
(bench/post_baseline.py) and ``wrk`` against the same HTTP sink (when installed).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.file_to_s3 import s3_scenario
from bench.file_to_stage import baseline_scenario, prepare_input, stage_scenario
from bench.file_to_stage_formats import format_scenario
from bench.file_to_stage_mapped import mapped_scenario
from bench.file_to_td import http_sink, post_baseline_scenario, td_scenario, wrk_scenario
from bench.gen import FIELDS
from bench.harness import (
    RESULTS_DIR,
    WORKDIR,
    BenchError,
    Result,
    Scenario,
    machine_info,
    run_interleaved,
)
from bench.latency import ROWS as LATENCY_ROWS
from bench.latency import Options as LatencyOptions
from bench.latency import RowResult, median_rows, run_rows
from bench.latency import markdown as latency_markdown
from bench.live_to_stage import kafka_scenario, kafka_topic
from bench.peers import fluent_bit
from bench.peers.scenarios import (
    fluent_bit_csv_scenario,
    fluent_bit_http_scenario,
    input_parts,
    streamer_http_scenario,
)
from bench.report import Goal, build_rows, write_report
from bench.socket_to_stage import file_reference, socket_scenario

SCENARIOS = ("stage", "stage_1w", "stage_mapped", "s3", "parquet", "td_postback", "td_ingest",
             "kafka", "socket", "socket_acks", "stage_10m", "stage_10m_w", "latency", "peers")
LATENCY = "latency"  # not a row of the interleaved table: its own after them
PEERS = "peers"  # the rows of PEER_ROWS, when a peer's binary is found
PEER_ROWS = ("fluent_bit_csv", "td_ingest_rx", "fluent_bit_http")
FULL = ("stage_10m", "stage_10m_w")
DEFAULT = tuple(s for s in SCENARIOS if s not in FULL)
FULL_RECORDS = 10_000_000
RSS_TARGET_MIB = 150.0

#: Every row, in the order of a repetition, with what it is compared with.
GOALS: dict[str, Goal] = {
    "tight": Goal(),
    "stage": Goal("tight", min_ratio=2.5),
    "stage_1w": Goal("tight"),
    "stage_mapped": Goal("stage_1w", min_ratio=0.9),
    "duckdb": Goal("tight"),
    "fluent_bit_csv": Goal("tight"),
    "s3": Goal("stage_1w", min_ratio=0.7),
    "parquet": Goal("stage_1w", min_ratio=0.9),
    "kafka": Goal("stage_1w"),
    "stage_api": Goal("tight"),
    "socket": Goal("stage_api", min_ratio=0.8),
    "socket_acks": Goal("stage_api", min_ratio=0.8),
    "aiohttp": Goal(),
    "td_postback": Goal("aiohttp", min_ratio=1.5),
    "wrk": Goal("aiohttp"),
    "td_ingest": Goal("tight", min_ratio=2.5),
    "fluent_bit_http": Goal(),
    "td_ingest_rx": Goal("fluent_bit_http"),
    "stage_10m": Goal(max_rss_mib=RSS_TARGET_MIB),
    "stage_10m_w": Goal(),
}
BASELINES = ("tight", "duckdb", "aiohttp", "wrk", "fluent_bit_csv", "fluent_bit_http")
#: Rows a chosen scenario brings along besides its goal's baseline.
EXTRAS = {"stage": ("duckdb",), "td_postback": ("wrk",)}


def needed(chosen: Sequence[str]) -> list[str]:
    """The chosen scenarios, their baselines and extras, in the order of a repetition
    (``peers`` stands for its rows, ``latency`` for none)."""
    chosen = [row for key in chosen if key != LATENCY
              for row in (PEER_ROWS if key == PEERS else (key,))]
    keys = set(chosen)
    for key in chosen:
        keys.update(k for k in (GOALS[key].baseline, *EXTRAS.get(key, ())) if k)
    return [key for key in GOALS if key in keys]


@dataclass
class Bench:
    """What the scenario builders share: options, inputs and the started services."""

    args: argparse.Namespace
    workdir: Path
    inputs: dict[int, Path]
    services: contextlib.ExitStack
    http: tuple[str, str] | None = None  # (url, kind) of the HTTP sink, once started
    peer_parts: list[tuple[Path, int]] | None = None
    said_no_peer: bool = False

    def with_fluent_bit(self, build: Callable[[Path], Scenario]) -> Scenario | None:
        """``build(binary)``, or None (said once) when there is no Fluent Bit."""
        try:
            binary = fluent_bit.find_binary()
        except FileNotFoundError as exc:
            raise BenchError(str(exc)) from None
        if binary is not None:
            return build(binary)
        if not self.said_no_peer:
            print(f"peers: Fluent Bit rows skipped: no ${fluent_bit.ENV_VAR} and no "
                  "fluent-bit on PATH (bench/peers/build_fluent_bit.sh builds it)",
                  file=sys.stderr)
            self.said_no_peer = True
        return None

    def parts(self, n: int) -> list[tuple[Path, int]]:
        """The input cut as the file rows with ``--workers`` cut it, line counts."""
        if self.peer_parts is None:
            self.peer_parts = input_parts(self.input(n), self.args.workers)
        return self.peer_parts

    def input(self, n: int) -> Path:
        if n not in self.inputs:
            self.inputs[n] = prepare_input(self.workdir, n, self.args.seed)
        return self.inputs[n]

    def sink_url(self) -> str:
        if self.http is None:
            self.http = self.services.enter_context(http_sink(self.workdir))
            print(f"HTTP sink: {self.http[1]} at {self.http[0]}", file=sys.stderr)
        return self.http[0]

    def moto(self) -> Any:
        from tests.fixtures.moto_s3 import start_moto_server

        return self.services.enter_context(start_moto_server())


def _builders(b: Bench) -> dict[str, Callable[[], Scenario | None]]:
    a, w, n = b.args, b.workdir, b.args.records
    post_n = min(a.postback_records, n)
    common: dict[str, Any] = {"timeout": a.timeout}
    # every worker has its own sink: the same requests in flight as the bare loop in all
    per_worker = max(1, a.concurrency // a.workers)
    return {
        "tight": lambda: baseline_scenario("tight", w, b.input(n), n, **common),
        "stage": lambda: stage_scenario(w, b.input(n), n, workers=a.workers, **common),
        "stage_1w": lambda: stage_scenario(w, b.input(n), n, **common),
        "stage_mapped": lambda: mapped_scenario(w, b.input(n), n, a.seed, **common),
        "duckdb": lambda: baseline_scenario("duckdb", w, b.input(n), n, **common),
        "s3": lambda: s3_scenario(w, b.input(n), n, b.moto(), **common),
        "parquet": lambda: format_scenario(w, b.input(n), n, "parquet", **common),
        "kafka": lambda: kafka_scenario(
            w, n, b.services.enter_context(kafka_topic(b.input(n))), b.input(n), **common),
        "stage_api": lambda: file_reference(w, b.input(n), n, **common),
        "socket": lambda: socket_scenario(w, b.input(n), n, a.connections, **common),
        "socket_acks": lambda: socket_scenario(w, b.input(n), n, a.connections, mode="acks",
                                               **common),
        "aiohttp": lambda: post_baseline_scenario(
            b.sink_url(), b.input(post_n), post_n, a.concurrency, **common),
        "td_postback": lambda: td_scenario(
            "postback", w, b.sink_url(), b.input(post_n), post_n, per_worker,
            workers=a.workers, **common),
        "wrk": lambda: wrk_scenario(b.sink_url(), b.input(post_n), a.concurrency,
                                    a.wrk_seconds),
        "td_ingest": lambda: td_scenario(
            "ingest", w, b.sink_url(), b.input(n), n, per_worker, workers=a.workers, **common),
        "fluent_bit_csv": lambda: b.with_fluent_bit(lambda fb: fluent_bit_csv_scenario(
            fb, w, b.parts(n), FIELDS, **common)),
        # the streamer's row of the same receiver: only beside Fluent Bit's
        "td_ingest_rx": lambda: b.with_fluent_bit(lambda _fb: streamer_http_scenario(
            w, b.input(n), n, a.workers, per_worker, **common)),
        "fluent_bit_http": lambda: b.with_fluent_bit(lambda fb: fluent_bit_http_scenario(
            fb, w, b.input(n), b.parts(n), **common)),
        "stage_10m": lambda: stage_scenario(
            w, b.input(FULL_RECORDS), FULL_RECORDS, name="file -> stage 10M",
            tag="stage-10m", **common),
        "stage_10m_w": lambda: stage_scenario(
            w, b.input(FULL_RECORDS), FULL_RECORDS, name="file -> stage 10M",
            tag="stage-10m", workers=a.workers, **common),
    }  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    ap.add_argument("--records", type=int, default=1_000_000, help="records per run")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each scenario (median)")
    ap.add_argument("--scenarios", default=",".join(DEFAULT),
                    help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    ap.add_argument("--full", action="store_true",
                    help=f"also {' and '.join(FULL)}: file -> stage of {FULL_RECORDS:,} records")
    # 200,000: at 50,000 the start-up of a supervisor and two workers (~0.8 s of CPU)
    # is 15% of a postback run, while the bare loop's clock starts after its imports
    ap.add_argument("--postback-records", type=int, default=200_000,
                    help="records per td postback and bare-loop run (one request each)")
    ap.add_argument("--connections", type=int, default=8, help="socket producer connections")
    ap.add_argument("--concurrency", type=int, default=64,
                    help="HTTP requests in flight (in all: divided between the workers)")
    ap.add_argument("--workers", type=int, default=2,
                    help="streamer `workers` for the file scenarios (stage_1w: always 1)")
    ap.add_argument("--wrk-seconds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=WORKDIR,
                    help="input cache and run dirs (default: %(default)s)")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--timeout", type=float, default=1800.0, help="per run, seconds")
    args = ap.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        ap.error(f"unknown scenarios {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if args.full:
        chosen += [key for key in FULL if key not in chosen]
    if not chosen or min(args.records, args.repeat, args.postback_records) <= 0:
        ap.error("--scenarios, --records, --repeat and --postback-records must not be empty")
    args.chosen = chosen
    return args


def _peers_note() -> str:
    binary = fluent_bit.find_binary()  # it was found valid before the runs
    if binary is None:
        return (f"Peers: skipped, no Fluent Bit (${fluent_bit.ENV_VAR} or fluent-bit on "
                "PATH; bench/peers/build_fluent_bit.sh builds it).")
    return (f"Peers: {fluent_bit.version(binary)} ({binary}), one tail input per input "
            "part, Flush 0.2 (bench/peers/fluent_bit.py); its rows are measured to the "
            "moment its output holds every record (it does not exit by itself), its "
            "output checked against the input. CSV: a template of the stage's columns, "
            "unquoted, null as nil, floats as %f, `time` from `ts`. HTTP: JSON lines to "
            "the bench receiver (bench/td_receiver.py), as the streamer's `td ingest, "
            "bench receiver` row.")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    keys = needed(args.chosen)
    started = dt.datetime.now(dt.UTC)
    machine = machine_info()  # the load average before the run
    with contextlib.ExitStack() as services:
        bench = Bench(args, workdir, {}, services)
        build = _builders(bench)
        latency: list[RowResult] = []
        try:
            scenarios = {key: s for key in keys if (s := build[key]()) is not None}
            print(f"{args.repeat} x alternating: "
                  f"{', '.join(s.name for s in scenarios.values())}", file=sys.stderr)
            by_name = run_interleaved(list(scenarios.values()), args.repeat)
            if LATENCY in args.chosen:
                latency = run_rows(LATENCY_ROWS, LatencyOptions(workdir, args.seed),
                                   args.repeat, lambda s: print(s, file=sys.stderr))
        except BenchError as exc:
            print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
            return 1
    results: dict[str, Result] = {key: by_name[s.name] for key, s in scenarios.items()}
    rows = build_rows(results, GOALS, BASELINES)

    command = shlex.join(["python", "-m", "bench.run", *(sys.argv[1:] if argv is None else argv)])
    date = started.date().isoformat()
    sink = bench.http[1] if bench.http else None
    inputs = {n: path.stat().st_size for n, path in sorted(bench.inputs.items())}
    notes = [
        f"`{command}` on {started:%Y-%m-%d %H:%M} UTC, git {machine['git_rev']}, "
        f"Python {machine['python']}, {machine['cpu_count']} CPUs, load average before "
        f"{machine['loadavg'][0]:.2f}.",
        "",
        f"Input: bench/gen.py, seed {args.seed}, 20 fields: "
        + ", ".join(f"{n:,} records of {size / n:.0f} bytes" for n, size in inputs.items())
        + "."
        + (f" HTTP sink: {sink}; td postback and the bare loop make one request per record, "
           f"{args.concurrency} in flight." if sink else ""),
        f"Every figure is the median (min-max) of {args.repeat} run(s), scenarios and "
        "baselines alternating; a ratio is the median (min-max) of the per-repetition "
        "ratios of records/s. Records/s = records / wall time of the whole process "
        "(start-up included); peak RSS = summed over the measured process and all its "
        "children (bench/README.md).",
    ]
    if PEERS in args.chosen:
        notes += ["", _peers_note()]
    if latency:
        notes += ["", "Latency (bench/latency.py; one process, a followed file written at "
                  "half the maximum measured just before; median of the runs):", "",
                  *latency_markdown(median_rows(latency), LatencyOptions(workdir))]
    doc = {
        "date": date,
        "utc": started.isoformat(timespec="seconds"),
        "command": command,
        "machine": machine,
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "inputs": [{"records": n, "bytes": size} for n, size in inputs.items()],
        "http_sink": sink,
        "latency": [vars(r) for r in latency],
    }
    paths = write_report(args.results_dir, date, rows, doc,
                         f"streamer benchmarks, {date}", notes)
    print(paths[1].read_text(encoding="utf-8"))
    for path in paths:
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
