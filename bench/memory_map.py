"""Where the memory of a multi-process run goes: PSS by kind of mapping, per process.

    python -m bench.memory_map [--records 10000000] [--workers 2] [--runs 1]
                               [--variant NAME=ENV=VALUE[,ENV=VALUE]] ...

Runs file -> local stage (the ``stage_10m_w`` row of bench/run.py: the input cut into
``--workers`` files, ``workers = --workers``) and reads ``/proc/PID/smaps`` of the
supervisor and every worker every 0.2 s. At the second whose summed PSS is the
largest, it reports each process's PSS by kind of mapping:

* ``heap``: anonymous memory (malloc's heap and arenas, Python objects, DuckDB's
  buffers), ``[heap]``, ``[stack]``;
* ``memfd``: DuckDB's input and output memory files (their allocated size, read
  from the descriptors: they are not mapped, so RSS and PSS leave them out;
  summed PSS below leaves them out too);
* ``libduckdb``, ``python``, ``other libraries`` (``.so`` files), ``other files``.

PSS (proportional set size) counts a page that n processes map as 1/n in each, so
the PSS of the processes adds up to what they hold together; summed RSS counts it n
times. Each ``--variant`` runs the same with extra environment variables (e.g.
``arena2=MALLOC_ARENA_MAX=2``), alternating with the default, for a before/after in
the same run. Writes bench/results/memory_map-<UTC>.json.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.configs import config_text, file_source, stage_sink
from bench.file_to_stage import prepare_input, split_input
from bench.harness import (
    REPO_ROOT,
    BenchError,
    compile_sources,
    machine_info,
    script_parser,
    streamer_executable,
    utc_stamp,
    warm_page_cache,
)

_MIB = 1024 * 1024
KINDS = ("heap", "memfd", "libduckdb", "python", "other libraries", "other files")


def kind_of(name: str) -> str:
    if not name or name.startswith("[") or name.startswith("/dev/zero"):
        return "heap"
    if name.startswith("/memfd:"):
        return "memfd"
    base = os.path.basename(name.split(" (deleted)")[0])
    if "duckdb" in base:
        return "libduckdb"
    if base.startswith("python") or base.startswith("libpython"):
        return "python"
    if ".so" in base:
        return "other libraries"
    return "other files"


def smaps_by_kind(pid: int) -> dict[str, int]:
    """PSS in bytes of ``pid`` by kind of mapping (empty once the process is gone)."""
    out: dict[str, int] = defaultdict(int)
    kind = "heap"
    try:
        with open(f"/proc/{pid}/smaps", "rb") as fh:
            for raw in fh:
                line = raw.decode("utf-8", "replace")
                head = line.split(None, 1)[0]
                if "-" in head and not head.endswith(":"):  # a mapping's first line
                    fields = line.split(None, 5)
                    kind = kind_of(fields[5].strip() if len(fields) > 5 else "")
                elif head == "Pss:":
                    out[kind] += int(line.split()[1]) * 1024
    except OSError:
        return {}
    return dict(out)


def memfd_bytes(pid: int) -> int:
    """Bytes in the memory files ``pid`` has open: in RAM, yet in neither its RSS nor
    its PSS (DuckDB reads and writes them through the descriptor, not a mapping)."""
    size = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:"):
                    size += os.stat(f"/proc/{pid}/fd/{fd}").st_blocks * 512
    return size


def sample_tree(root: psutil.Process) -> dict[str, dict[str, int]]:
    """{role: PSS by kind} of the root (supervisor) and its children (workers)."""
    pids = {"supervisor": root.pid}
    with contextlib.suppress(psutil.Error):
        for index, child in enumerate(sorted(root.children(), key=lambda p: p.pid)):
            pids[f"worker {index}"] = child.pid
    sample = {}
    for role, pid in pids.items():
        sample[role] = smaps_by_kind(pid)
        sample[role]["memfd"] = memfd_bytes(pid)
    return sample


def total(sample: dict[str, dict[str, int]]) -> int:
    """Summed PSS (the memory files left out, as the harness's PSS leaves them)."""
    return sum(v for kinds in sample.values() for k, v in kinds.items() if k != "memfd")


def measure(config: Path, env: dict[str, str], interval: float = 0.2) -> dict[str, Any]:
    """One run: its wall time and the sample of largest summed PSS."""
    started = time.monotonic()
    proc = subprocess.Popen([streamer_executable(), "run", "-c", str(config)], cwd=REPO_ROOT,
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peak: dict[str, dict[str, int]] = {}
    stop = threading.Event()

    def sampler() -> None:
        nonlocal peak
        while not stop.wait(interval):
            sample = sample_tree(root)
            if total(sample) > total(peak):
                peak = sample

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    assert proc.stderr is not None
    err = proc.stderr.read()  # until the streamer closes it, at its exit
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise BenchError(f"exit {proc.returncode}: {err.decode()[-2000:]}")
    return {"wall_s": time.monotonic() - started, "cpu_s": usage.ru_utime + usage.ru_stime,
            "system_s": usage.ru_stime, "peak": peak, "peak_pss_bytes": total(peak)}


def table(name: str, peak: dict[str, dict[str, int]]) -> list[str]:
    lines = [f"{name}: summed PSS {total(peak) / _MIB:.1f} MiB at its largest sample",
             "| process | " + " | ".join(KINDS) + " | PSS |",
             "|---|" + "---:|" * (len(KINDS) + 1)]
    for role, kinds in peak.items():
        cells = [f"{kinds.get(k, 0) / _MIB:.1f}" for k in KINDS]
        pss = sum(v for k, v in kinds.items() if k != "memfd")
        lines.append(f"| {role} | " + " | ".join(cells) + f" | {pss / _MIB:.1f} |")
    return lines


def main() -> None:
    parser = script_parser(__doc__)
    parser.set_defaults(runs=1)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=ENV=VALUE[,ENV=VALUE]: a run with these variables too")
    args = parser.parse_args()
    variants: dict[str, dict[str, str]] = {"default": {}}
    for spec in args.variant:
        name, _, assignments = spec.partition("=")
        variants[name] = dict(a.split("=", 1) for a in assignments.split(",") if a)
    input_path = prepare_input(args.workdir, args.records, args.seed)
    files = split_input(input_path, args.workers)
    compile_sources()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for i in range(args.runs):
        for name, env in variants.items():
            run_dir = args.workdir / f"memory-map-{i}"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            config = run_dir / "streamer.toml"
            config.write_text(config_text(run_dir / "data", file_source(files),
                                          stage_sink((run_dir / "stage").as_uri() + "/"),
                                          workers=args.workers), encoding="utf-8")
            warm_page_cache([files])
            try:
                result = measure(config, env)
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
            runs[name].append(result)
            print(f"  run {i + 1}/{args.runs} {name:<12} peak PSS "
                  f"{result['peak_pss_bytes'] / _MIB:7.1f} MiB  wall {result['wall_s']:6.2f}s  "
                  f"cpu {result['cpu_s']:6.2f}s (system {result['system_s']:5.2f}s)",
                  file=sys.stderr, flush=True)
    lines = []
    for name, results in runs.items():
        median = sorted(results, key=lambda r: r["peak_pss_bytes"])[len(results) // 2]
        walls = statistics.median(r["wall_s"] for r in results)
        cpu = statistics.median(r["cpu_s"] for r in results)
        lines += [*table(f"{name} {variants[name] or ''} (median run; medians: wall "
                         f"{walls:.2f} s, cpu {cpu:.2f} s)",
                         median["peak"]), ""]
    print("\n".join(lines))
    out = REPO_ROOT / "bench" / "results" / f"memory_map-{utc_stamp()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps({"machine": machine_info(), "records": args.records,
                                  "workers": args.workers, "variants": variants,
                                  "runs": runs}, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
