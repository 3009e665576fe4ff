"""Benchmark: NDJSON file -> td sink (postback and ingest) against a fast loopback
HTTP sink, with a bare aiohttp + uvloop posting loop as the same-run baseline.

    python -m bench.file_to_td [--postback-records 50000] [--ingest-records 1000000]
                               [--runs 3] [--concurrency 64] [--wrk-seconds 5]

The sink is nginx (`return 200 '{}'`, one worker) when nginx is installed
(Debian: nginx-light), else bench/http_sink.py in its own process.  `wrk` against the
same sink, when installed, shows the sink's ceiling.  Target of issue 9: postback >=
1.5 x the bare loop (ingest's target, 2.5 x the tight loop, is in `python -m bench.run`).
Writes bench/results/file_to_td-<UTC>.json.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson

from bench.compare import compare, save
from bench.configs import config_text, file_source, td_sink
from bench.file_to_stage import prepare_input, split_input
from bench.harness import (
    REPO_ROOT,
    BenchError,
    Run,
    Scenario,
    expect_records,
    free_port,
    script_parser,
    streamer_scenario,
)

NGINX_CONF = """
worker_processes 1;
error_log {dir}/nginx-error.log;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_buffer_size 8m;
    client_max_body_size 16m;
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{ default_type application/json; return 200 '{{}}'; }}
    }}
}}
"""


@contextlib.contextmanager
def http_sink(workdir: Path) -> Iterator[tuple[str, str]]:
    """(url, kind) of a fast HTTP server on loopback, in its own process."""
    port = free_port()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx:
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=workdir, port=port))
        cmd, kind = [nginx, "-c", str(conf), "-p", str(workdir), "-g", "daemon off;"], "nginx"
    else:
        cmd, kind = [sys.executable, "-m", "bench.http_sink", str(port)], "aiohttp"
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise BenchError(f"{kind} sink did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", kind
    finally:
        proc.terminate()
        proc.wait(10)


def sink_records(url: str) -> int | None:
    """The records the HTTP sink at ``url`` has received so far (``bench/http_sink.py``
    counts them), or None when it does not count (nginx)."""
    try:
        with urllib.request.urlopen(f"{url}/stats", timeout=10) as response:
            records = orjson.loads(response.read()).get("records")
    except urllib.error.HTTPError:
        return None
    return None if records is None else int(records)  # nginx answers `{}` to every path


def expect_sink_records(scenario: Scenario, url: str) -> Scenario:
    """``scenario``, whose runs must bring the HTTP sink at ``url`` exactly its records
    (when the sink counts them): checked after each run, outside the measurement."""
    prepare, validate = scenario.prepare, scenario.validate
    before: dict[int, int | None] = {}

    def count_then_prepare(i: int) -> None:
        before[i] = sink_records(url)
        if prepare:
            prepare(i)

    def validate_then_count(run: Run, i: int) -> None:
        if validate:
            validate(run, i)
        start = before.pop(i, None)
        if start is not None:
            got = (sink_records(url) or 0) - start
            run.extra["sink_records"] = got
            if got != scenario.records:
                raise BenchError(f"{scenario.name} run {i + 1}: the HTTP sink received {got} "
                                 f"records, expected {scenario.records}")

    scenario.prepare, scenario.validate = count_then_prepare, validate_then_count
    return scenario


def postback_url(url: str) -> str:
    return f"{url}/postback/v3/event/bench_db/bench_table"


def td_scenario(
    api: str,
    workdir: Path,
    url: str,
    input_path: Path,
    n: int,
    concurrency: int,
    *,
    timeout: float | None = None,
    keep: bool = False,
    workers: int = 1,
) -> Scenario:
    """``streamer run``: file source -> td sink (``postback`` or ``ingest``) posting to ``url``
    (``concurrency`` requests in flight per worker)."""
    name = f"file -> td {api}" + (f" ({workers} workers)" if workers > 1 else "")
    files = split_input(input_path, workers)
    return expect_sink_records(streamer_scenario(
        name, n, workdir, f"td-{api}-w{workers}",
        lambda d, _i: config_text(d / "data", file_source(files),
                                  td_sink(url, api, concurrency), workers=workers),
        sink="td", keep=keep, timeout=timeout, inputs=[files],
    ), url)  # fmt: skip


def post_baseline_scenario(
    url: str, input_path: Path, n: int, concurrency: int, *, timeout: float | None = None
) -> Scenario:
    """bench/post_baseline.py: a bare aiohttp + uvloop loop posting every line to ``url``."""
    name = "bare aiohttp loop"
    return expect_sink_records(Scenario(
        name,
        lambda i: [sys.executable, "-m", "bench.post_baseline", postback_url(url), input_path,
                   str(concurrency)],
        n, validate=expect_records(name, n), cwd=REPO_ROOT, timeout=timeout,
        inputs=[input_path],
    ), url)  # fmt: skip


def wrk_scenario(
    url: str, input_path: Path, concurrency: int, seconds: int
) -> Scenario | None:
    """``wrk`` (one thread, ``concurrency`` connections, ``seconds`` long) posting the first
    record of ``input_path`` to ``url``: the sink's ceiling for postback-shaped requests.
    None when wrk is not installed.  Its record count is the requests it made.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    name = "wrk"

    def validate(run: Run, i: int) -> None:
        summary = run.summary or {}
        if summary.get("errors") != 0 or not summary.get("records"):
            raise BenchError(f"{name} run {i + 1}: {summary!r}\n{run.stderr_tail}")
        run.records = int(summary["records"])

    return Scenario(
        name,
        lambda i: [wrk, "-t1", f"-c{concurrency}", f"-d{seconds}s", "-s",
                   REPO_ROOT / "bench" / "wrk_post.lua", postback_url(url), "--",
                   input_path.resolve()],
        0, validate=validate, cwd=REPO_ROOT,
    )  # fmt: skip


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--postback-records", type=int, default=50_000)
    parser.add_argument("--ingest-records", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    args = parser.parse_args()
    post_input = prepare_input(args.workdir, args.postback_records, args.seed)
    ingest_input = prepare_input(args.workdir, args.ingest_records, args.seed)
    conc = args.concurrency

    with http_sink(args.workdir) as (url, kind):
        scenarios = [
            post_baseline_scenario(url, post_input, args.postback_records, conc),
            td_scenario("postback", args.workdir, url, post_input, args.postback_records, conc),
            td_scenario("ingest", args.workdir, url, ingest_input, args.ingest_records, conc),
        ]
        wrk = wrk_scenario(url, post_input, conc, args.wrk_seconds)
        if wrk is not None:
            scenarios.append(wrk)
        print(f"HTTP sink: {kind}")
        bare, postback, ingest = (s.name for s in scenarios[:3])
        results, ratios = compare(scenarios, args.runs, bare, over=[postback],
                                  labels={postback: "postback/bare loop"},
                                  targets={postback: 1.5})
    rate = results[ingest].records_per_s.median
    print(f"ingest: {rate:,.0f} records/s")
    save("file_to_td", results, {"http_sink": kind, "postback_over_bare":
                                 ratios[postback].median, "ingest_records_per_s": rate})


if __name__ == "__main__":
    main()
