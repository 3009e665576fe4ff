"""Benchmark: socket -> stage against file -> stage, same run, alternating.

    python -m bench.socket_to_stage [--records 300000] [--runs 3] [--connections 8]
                                    [--modes newline,length_prefixed,acks]
                                    [--baseline-tree DIR]

Modes: ``newline`` (NDJSON lines), ``length_prefixed`` (one 4-byte-length frame per
record), ``acks`` (length-prefixed, ``ack = true``: the sender reads the server's frame
counts until every frame it sent is acknowledged, and fails otherwise).

Each socket run is bench/live_driver.py: it starts ``streamer run`` (one process, a
socket source, the API on for its metrics) and bench/socket_sender.py, a process of its
own sending the input's ~1 MiB blocks of whole lines or frames over ``--connections``
connections with blocking ``sendall`` (the length-prefixed input is framed once before
the runs).  When the stage sink has taken every record into its buffer the driver sends
SIGTERM, and the streamer drains them to the stage and exits, as a one-shot file run does
at the end of its input.  The reference is ``file -> stage (API on)``, one process, on
the same records, with the API listening as in the socket runs (``file_reference``).
``cpu s`` of a socket row is the streamer's own CPU (the process tree's, with the sender
and the driver, is in the JSON as ``tree_cpu_s``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from bench.compare import compare, save
from bench.configs import config_text, file_source, stage_sink
from bench.file_to_stage import prepare_input
from bench.harness import BenchError, Run, Scenario, free_port, script_parser, streamer_scenario
from bench.output_check import expect_stage
from bench.socket_sender import framed_copy

#: mode -> (framing, ack, row name)
MODES = {
    "newline": ("newline", False, "socket -> stage"),
    "length_prefixed": ("length_prefixed", False, "socket -> stage (length-prefixed)"),
    "acks": ("length_prefixed", True, "socket -> stage (length-prefixed, acks)"),
}


REFERENCE = "file -> stage (API on)"


def file_reference(workdir: Path, input_path: Path, n: int, *, timeout: float | None = None,
                   keep: bool = False) -> Scenario:
    """file -> stage, one process, with the API listening as in the socket runs: the
    driver reads the socket runs' progress from /metrics, and starting the API (importing
    aiohttp) costs about 0.2 s of CPU and wall, which the file runs of bench.run do not
    pay."""
    return streamer_scenario(
        REFERENCE, n, workdir, "stage-api",
        lambda d, _i: config_text(d / "data", file_source(input_path),
                                  stage_sink((d / "stage").as_uri() + "/"),
                                  metrics_port=free_port()),
        sink="stage", check=expect_stage(REFERENCE, input_path), keep=keep, timeout=timeout,
        inputs=[input_path],
    )  # fmt: skip


def socket_scenario(
    workdir: Path,
    input_path: Path,
    n: int,
    connections: int,
    *,
    mode: str = "newline",
    timeout: float | None = None,
    keep: bool = False,
    tree: Path | None = None,
) -> Scenario:
    """socket -> stage: the sender sends ``input_path``'s records over ``connections``.
    ``tree``: run the streamer (and this bench) of another checkout, for an A/B."""
    framing, ack, name = MODES[mode]
    if tree is not None:
        name = f"{name} [{tree.name}]"
    wire = framed_copy(input_path) if framing == "length_prefixed" else input_path
    driver: dict[int, list[str]] = {}

    def config(run_dir: Path, i: int) -> str:
        metrics_port = free_port()
        address = f"127.0.0.1:{free_port()}"
        driver[i] = [str(metrics_port), str(n), "--until", "received", "--socket", address,
                     "--input", str(wire), "--connections", str(connections),
                     "--framing", framing, *(["--ack"] if ack else [])]
        source = (f'type = "socket"\nlisten = "{address}"\nframing = "{framing}"\n'
                  f"ack = {str(ack).lower()}\n")
        sink = stage_sink((run_dir / "stage").as_uri() + "/")
        return config_text(run_dir / "data", source, sink, metrics_port=metrics_port)

    def streamer_cpu(run: Run, _run_dir: Path, i: int) -> None:
        """``cpu s`` of the row: the streamer's own, as in the file rows."""
        cpu = ((run.summary or {}).get("bench") or {}).get("streamer_cpu_s")
        if cpu is None:
            raise BenchError(f"{name} run {i + 1}: the driver did not report the CPU")
        run.extra["tree_cpu_s"] = run.cpu_s
        run.extra["sender_cpu_s"] = run.summary["bench"]["sender_cpu_s"]
        run.extra["streamer_peak_rss_bytes"] = run.summary["bench"]["streamer_peak_rss_bytes"]
        run.cpu_s = cpu

    tag = f"socket-{mode}" if tree is None else f"socket-{mode}-{tree.name}"
    return streamer_scenario(
        name, n, workdir, tag, config, sink="stage",
        argv=lambda path, i: [sys.executable, "-m", "bench.live_driver", path, *driver.pop(i)],
        check=expect_stage(name, input_path, also=streamer_cpu), keep=keep, timeout=timeout,
        inputs=[wire],
        env=None if tree is None else {"PYTHONPATH": str(tree)},
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"comma-separated, of: {', '.join(MODES)}")
    parser.add_argument("--baseline-tree", type=Path,
                        help="another checkout (e.g. a git worktree of main, with this bench): "
                             "its streamer runs the same modes, alternating (an A/B)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    n = args.records
    input_path = prepare_input(args.workdir, n, args.seed)
    reference = file_reference(args.workdir, input_path, n)
    trees = [None] if args.baseline_tree is None else [args.baseline_tree.resolve(), None]
    live = [socket_scenario(args.workdir, input_path, n, args.connections, mode=m, tree=t)
            for m in modes for t in trees]
    results, ratios = compare([reference, *live], args.runs, reference.name)
    save("socket_to_stage", results,
         {"socket_over_file": {name: ratio.median for name, ratio in ratios.items()},
          "records": n, "connections": args.connections})


if __name__ == "__main__":
    main()
