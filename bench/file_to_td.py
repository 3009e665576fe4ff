"""Benchmark: NDJSON file -> td sink (postback and ingest) against a fast loopback
HTTP sink, with a bare aiohttp + uvloop posting loop as the same-run baseline.

    python -m bench.file_to_td [--postback-records 50000] [--ingest-records 1000000]
                               [--runs 3] [--concurrency 64]

The sink is nginx (`return 200 '{}'`, one worker) when nginx is installed
(Debian: nginx-light), else bench/http_sink.py in its own process.  Targets of
issue 3: postback >= 0.9 x the bare loop; ingest >= 250,000 records/s.
Writes bench/results/file_to_td-<UTC>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.file_to_stage import ensure_input
from bench.harness import (
    REPO_ROOT,
    BenchError,
    Scenario,
    expect_delivered,
    format_table,
    free_port,
    paired_ratio,
    run_interleaved,
    streamer_executable,
    write_results,
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


def td_config(workdir: Path, name: str, input_path: Path, url: str, api: str,
              concurrency: int) -> Path:
    path = workdir / f"{name}.toml"
    path.write_text(
        f"data_dir = {json.dumps(str(workdir / ('data-' + name)))}\n"
        '[api]\nlisten = ""\n'
        '[sources.input]\ntype = "file"\n'
        f"paths = [{json.dumps(str(input_path))}]\nfollow = false\n"
        '[sinks.td]\ntype = "td"\n'
        f'api = "{api}"\nendpoint = "{url}"\ndatabase = "bench_db"\ntable = "bench_table"\n'
        f'write_key = "bench-key"\nconcurrency = {concurrency}\n')
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postback-records", type=int, default=50_000)
    parser.add_argument("--ingest-records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/streamer-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    post_input, _ = ensure_input(args.workdir, args.postback_records, args.seed)
    ingest_input, _ = ensure_input(args.workdir, args.ingest_records, args.seed)
    exe = str(streamer_executable())

    def cleanup(name: str):
        return lambda i: shutil.rmtree(args.workdir / f"data-{name}", ignore_errors=True)

    with http_sink(args.workdir) as (url, kind):
        post_url = f"{url}/postback/v3/event/bench_db/bench_table"
        scenarios = [
            Scenario("bare aiohttp loop", lambda i: [sys.executable, "-m", "bench.post_baseline",
                                                     post_url, str(post_input),
                                                     str(args.concurrency)],
                     args.postback_records, cwd=REPO_ROOT),
            Scenario("streamer postback", lambda i: [exe, "run", "-c", str(td_config(
                args.workdir, "postback", post_input, url, "postback", args.concurrency))],
                     args.postback_records, validate=expect_delivered("td", args.postback_records),
                     cleanup=cleanup("postback"), cwd=REPO_ROOT),
            Scenario("streamer ingest", lambda i: [exe, "run", "-c", str(td_config(
                args.workdir, "ingest", ingest_input, url, "ingest", args.concurrency))],
                     args.ingest_records, validate=expect_delivered("td", args.ingest_records),
                     cleanup=cleanup("ingest"), cwd=REPO_ROOT),
        ]
        results = run_interleaved(scenarios, args.runs)
    bare, postback, ingest = (results[s.name] for s in scenarios)
    ratio = paired_ratio(postback, bare)
    print(f"HTTP sink: {kind}")
    print(format_table(list(results.values())))
    print(f"postback/bare loop records/s: x{ratio.median:.2f} (paired per run, "
          f"{ratio.min:.2f}-{ratio.max:.2f}); target >= 0.9")
    print(f"ingest: {ingest.records_per_s.median:,.0f} records/s; target >= 250,000")
    path = write_results("file_to_td", list(results.values()),
                         {"http_sink": kind, "postback_over_bare": ratio.median,
                          "ingest_records_per_s": ingest.records_per_s.median})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
