"""Benchmark: NDJSON file -> local CSV stage, streamer vs same-run baselines.

    python -m bench.file_to_stage [--records 1000000] [--runs 3] [--workdir DIR]
                                  [--seed 1] [--no-duckdb] [--only-baselines]
                                  [--verify-output] [--keep-outputs]

Generates the input once (cached in the workdir by n, seed and generator version), then
alternates, per repetition: tight loop baseline, ``streamer run -c CONFIG`` (file source
-> stage sink with ``load = none``), DuckDB COPY ceiling.  Each command runs in its own
subprocess; wall time, peak RSS of the process tree and CPU time are measured.  Prints
records/s and peak RSS (median, min-max) and the streamer/tight-loop ratio, and writes
``bench/results/file_to_stage-<UTC>.json``.  Fails loudly if the streamer's summary does
not report ``delivered == records``.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.gen import FIELDS, GEN_VERSION, generate
from bench.harness import (
    REPO_ROOT,
    RESULTS_DIR,
    BenchError,
    Run,
    Scenario,
    format_table,
    paired_ratio,
    run_interleaved,
    streamer_executable,
    write_results,
)

_MIB = 1024 * 1024


def _toml_str(s: str) -> str:
    # A JSON string literal is a valid TOML basic string.
    return json.dumps(s)


def streamer_config(workdir: Path, input_path: Path, run: int) -> str:
    """The streamer config for repetition ``run`` (file -> local stage, load none)."""
    data_dir = workdir / f"data-{run}"
    stage_url = (workdir / f"stage-{run}").as_uri() + "/"
    cols = ", ".join(_toml_str(c) for c in FIELDS)
    return (
        f"data_dir = {_toml_str(str(data_dir))}\n"
        "[api]\n"
        'listen = ""\n'
        "[sources.input]\n"
        'type = "file"\n'
        f"paths = [{_toml_str(str(input_path))}]\n"
        "follow = false\n"
        'read_from = "beginning"\n'
        "[sinks.stage]\n"
        'type = "stage"\n'
        'inputs = ["input"]\n'
        f"url = {_toml_str(stage_url)}\n"
        f"columns = [{cols}]\n"
        "max_file_records = 1000000\n"
        "[sinks.stage.load]\n"
        'type = "none"\n'
    )


def ensure_input(workdir: Path, n: int, seed: int) -> tuple[Path, float | None]:
    """Return (cached input path, generation seconds or None if it was cached)."""
    path = workdir / f"input-n{n}-s{seed}-v{GEN_VERSION}.ndjson"
    if path.exists():
        return path, None
    tmp = path.with_suffix(".tmp")
    t0 = time.perf_counter()
    generate(tmp, n, seed)
    dt = time.perf_counter() - t0
    os.replace(tmp, path)
    return path, dt


def _warm_cache(path: Path) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


def _dir_stats(d: Path) -> tuple[int, int]:
    files = [p for p in d.rglob("*") if p.is_file()] if d.exists() else []
    return len(files), sum(p.stat().st_size for p in files)


def _rm(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _count_stage_rows(stage: Path) -> int:
    """Data rows in the stage's CSV files (header assumed on each file; .gz ok)."""
    import duckdb

    files = sorted(
        str(p) for p in stage.rglob("*") if p.is_file() and p.name.endswith((".csv", ".csv.gz"))
    )
    if not files:
        raise BenchError(f"no .csv/.csv.gz files in stage {stage}")
    con = duckdb.connect()
    try:
        row = con.execute(
            "SELECT count(*) FROM read_csv(?, header = true, all_varchar = true)", [files]
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def _csv_rows(path: Path) -> int:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        return sum(1 for _ in f) - 1


def _startup_seconds(code: str, reps: int = 3) -> float | None:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, check=False
        )
        if proc.returncode != 0:
            return None
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build_scenarios(
    args: argparse.Namespace, workdir: Path, input_path: Path, n: int
) -> list[Scenario]:
    py = sys.executable
    scenarios: list[Scenario] = []
    keep = args.keep_outputs
    tight_digest: dict[int, str] = {}  # run -> sha256 of the tight loop's CSV (verify mode)

    # (a) tight loop baseline
    def tight_out(i: int) -> Path:
        return workdir / f"tight-{i}.csv"

    def tight_validate(run: Run, i: int) -> None:
        got = (run.summary or {}).get("records")
        if got != n:
            raise BenchError(f"tight loop run {i + 1}: records={got!r}, expected {n}")
        run.extra["output_bytes"] = tight_out(i).stat().st_size
        if args.verify_output:
            rows = _csv_rows(tight_out(i))
            if rows != n:
                raise BenchError(f"tight loop run {i + 1}: {rows} CSV rows, expected {n}")
            tight_digest[i] = _sha256(tight_out(i))

    scenarios.append(
        Scenario(
            name="tight",
            command=lambda i: [py, "-m", "bench.baselines", "tight", input_path, tight_out(i)],
            records=n,
            prepare=lambda i: _rm(tight_out(i)),
            cleanup=None if keep else (lambda i: _rm(tight_out(i))),
            validate=tight_validate,
            cwd=REPO_ROOT,
            timeout=args.timeout,
        )
    )

    # (b) streamer: file -> local stage, load none
    if not args.only_baselines:
        exe = Path(args.streamer) if args.streamer else streamer_executable()
        if not exe.exists():
            raise SystemExit(
                f"streamer executable not found at {exe} (use --only-baselines to skip it)"
            )

        def cfg_path(i: int) -> Path:
            return workdir / f"streamer-{i}.toml"

        def streamer_prepare(i: int) -> None:
            for p in (workdir / f"data-{i}", workdir / f"stage-{i}"):
                _rm(p)
            text = streamer_config(workdir, input_path, i)
            tomllib.loads(text)  # our own sanity check
            cfg_path(i).write_text(text, encoding="utf-8")

        def streamer_cleanup(i: int) -> None:
            if keep:
                return
            for p in (workdir / f"data-{i}", workdir / f"stage-{i}", cfg_path(i)):
                _rm(p)

        def streamer_validate(run: Run, i: int) -> None:
            s = run.summary
            if not s:
                raise BenchError(
                    f"streamer run {i + 1}: last stderr line is not a JSON summary\n"
                    f"stderr tail:\n{run.stderr_tail}"
                )
            sink = (s.get("sinks") or {}).get("stage") or {}
            src = (s.get("sources") or {}).get("input") or {}
            delivered = sink.get("delivered")
            if delivered != n:
                raise BenchError(
                    f"streamer run {i + 1}: sinks.stage.delivered={delivered!r}, "
                    f"expected {n}\nsummary: {json.dumps(s)}"
                )
            for key, val in (
                ("sources.input.records", src.get("records")),
                ("sinks.stage.received", sink.get("received")),
            ):
                if val is not None and val != n:
                    raise BenchError(f"streamer run {i + 1}: {key}={val!r}, expected {n}")
            files, nbytes = _dir_stats(workdir / f"stage-{i}")
            run.extra["output_files"] = files
            run.extra["output_bytes"] = nbytes
            if files == 0:
                raise BenchError(f"streamer run {i + 1}: stage dir is empty")
            if args.verify_output:
                rows = _count_stage_rows(workdir / f"stage-{i}")
                if rows != n:
                    raise BenchError(f"streamer run {i + 1}: {rows} rows in stage, expected {n}")
                csvs = [p for p in (workdir / f"stage-{i}").rglob("*.csv") if p.is_file()]
                if len(csvs) == 1 and i in tight_digest:
                    same = _sha256(csvs[0]) == tight_digest[i]
                    run.extra["identical_to_tight"] = same
                    if not same:
                        print(
                            f"  note: streamer run {i + 1} stage CSV differs from the tight "
                            "loop's CSV (same row count)",
                            file=sys.stderr,
                        )

        scenarios.append(
            Scenario(
                name="streamer",
                command=lambda i: [exe, "run", "-c", cfg_path(i)],
                records=n,
                prepare=streamer_prepare,
                cleanup=streamer_cleanup,
                validate=streamer_validate,
                cwd=workdir,
                timeout=args.timeout,
            )
        )

    # (c) DuckDB ceiling
    if not args.no_duckdb:

        def duck_out(i: int) -> Path:
            return workdir / f"duckdb-{i}.csv"

        def duck_validate(run: Run, i: int) -> None:
            got = (run.summary or {}).get("records")
            if got != n:
                raise BenchError(f"duckdb run {i + 1}: records={got!r}, expected {n}")
            run.extra["output_bytes"] = duck_out(i).stat().st_size

        scenarios.append(
            Scenario(
                name="duckdb",
                command=lambda i: [py, "-m", "bench.baselines", "duckdb", input_path, duck_out(i)],
                records=n,
                prepare=lambda i: _rm(duck_out(i)),
                cleanup=None if keep else (lambda i: _rm(duck_out(i))),
                validate=duck_validate,
                cwd=REPO_ROOT,
                timeout=args.timeout,
            )
        )
    return scenarios


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.file_to_stage", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "streamer-bench",
        help="input cache and per-run outputs (default: %(default)s)",
    )
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--no-duckdb", action="store_true", help="skip the DuckDB ceiling")
    ap.add_argument("--only-baselines", action="store_true", help="skip the streamer")
    ap.add_argument("--streamer", help="streamer executable (default: next to sys.executable)")
    ap.add_argument(
        "--verify-output",
        action="store_true",
        help="also count the CSV rows written and compare the streamer's stage CSV with the "
        "tight loop's (outside the timing; assumes a header per file)",
    )
    ap.add_argument("--keep-outputs", action="store_true", help="do not delete outputs")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per-run timeout, seconds")
    args = ap.parse_args(argv)
    if args.records <= 0 or args.runs <= 0:
        ap.error("--records and --runs must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    n: int = args.records
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    input_path, gen_s = ensure_input(workdir, n, args.seed)
    input_bytes = input_path.stat().st_size
    if gen_s is None:
        print(f"input: {input_path} (cached, {input_bytes / 1e6:.1f} MB)", file=sys.stderr)
    else:
        print(
            f"input: {input_path} generated in {gen_s:.2f}s "
            f"({n / gen_s:,.0f} rec/s, {input_bytes / 1e6:.1f} MB)",
            file=sys.stderr,
        )
    _warm_cache(input_path)

    scenarios = build_scenarios(args, workdir, input_path, n)
    startup: dict[str, Any] = {
        "baseline_import_s": _startup_seconds("import csv, orjson, bench.gen"),
    }
    if not args.only_baselines:
        startup["streamer_import_s"] = _startup_seconds("import streamer.cli")

    print(
        f"{n:,} records x {args.runs} runs, alternating: {', '.join(s.name for s in scenarios)}",
        file=sys.stderr,
    )
    try:
        results = run_interleaved(scenarios, args.runs)
    except BenchError as e:
        print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
        return 1

    ordered = [results[s.name] for s in scenarios]
    print()
    print(f"file -> stage, {n:,} records ({input_bytes / n:.0f} B/record), {args.runs} runs")
    print(format_table(ordered))
    ratios: dict[str, Any] = {}
    base = results["tight"]
    for name in ("streamer", "duckdb"):
        if name not in results:
            continue
        pr = paired_ratio(results[name], base)
        of_medians = results[name].records_per_s.median / base.records_per_s.median
        rss = results[name].peak_rss.median / base.peak_rss.median
        ratios[f"{name}/tight"] = {
            "records_per_s_paired": {"median": pr.median, "min": pr.min, "max": pr.max},
            "records_per_s_of_medians": of_medians,
            "peak_rss_of_medians": rss,
        }
        print(
            f"{name}/tight: records/s x{pr.median:.2f} (paired per run, {pr.min:.2f}-{pr.max:.2f};"
            f" ratio of medians x{of_medians:.2f}), peak RSS x{rss:.2f}"
        )
    if "streamer" in results:
        internal = [
            r.summary["elapsed_s"]
            for r in results["streamer"].runs
            if r.summary and isinstance(r.summary.get("elapsed_s"), int | float)
        ]
        if internal and min(internal) > 0:
            med = statistics.median(internal)
            print(
                f"streamer internal elapsed_s (from its summary; excludes process start-up): "
                f"median {med:.2f}s = {n / med:,.0f} rec/s"
            )
    for key, val in startup.items():
        if val is not None:
            print(f"{key}: {val:.3f}s")

    meta = {
        "records": n,
        "seed": args.seed,
        "runs": args.runs,
        "input_bytes": input_bytes,
        "generator_s": gen_s,
        "order": [s.name for s in scenarios],
        "streamer_config": None if args.only_baselines else streamer_config(workdir, input_path, 0),
        "startup": startup,
        "ratios": ratios,
    }
    path = write_results("file_to_stage", ordered, meta, args.results_dir)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
