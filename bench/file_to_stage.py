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
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.configs import config_text, file_source, stage_sink
from bench.gen import FIELDS, GEN_VERSION, generate
from bench.harness import (
    REPO_ROOT,
    RESULTS_DIR,
    BenchError,
    Run,
    Scenario,
    expect_records,
    format_table,
    paired_ratio,
    run_interleaved,
    script_parser,
    streamer_executable,
    streamer_scenario,
    write_results,
)
from bench.output_check import data_files, expect_output, shape_columns

#: Scenario names of the two conversion baselines (``bench.baselines`` sub-commands).
BASELINE_NAMES = {"tight": "tight loop", "duckdb": "duckdb COPY"}
STAGE = "file -> stage"


def ensure_input(workdir: Path, n: int, seed: int,
                 shape: str = "default") -> tuple[Path, float | None]:
    """Return (cached input path, generation seconds or None if it was cached)."""
    prefix = "input" if shape == "default" else f"input-{shape}"
    path = workdir / f"{prefix}-n{n}-s{seed}-v{GEN_VERSION}.ndjson"
    workdir.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path, None
    tmp = path.with_suffix(".tmp")
    t0 = time.perf_counter()
    generate(tmp, n, seed, shape)
    dt = time.perf_counter() - t0
    os.replace(tmp, path)
    return path, dt


def prepare_input(workdir: Path, n: int, seed: int, shape: str = "default") -> Path:
    """``ensure_input``, said on stderr, then read once so that it is in the page cache."""
    path, gen_s = ensure_input(workdir, n, seed, shape)
    size = path.stat().st_size
    if gen_s is None:
        print(f"input: {path} (cached, {size / 1e6:.1f} MB)", file=sys.stderr)
    else:
        print(
            f"input: {path} generated in {gen_s:.2f}s "
            f"({n / gen_s:,.0f} rec/s, {size / 1e6:.1f} MB)",
            file=sys.stderr,
        )
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass
    return path


def split_input(path: Path, parts: int) -> Path:
    """The input cut into ``parts`` files of whole lines (cached); a glob matching them.

    ``workers = N`` shares files between worker processes, so a one-file input would
    keep all but one worker idle."""
    if parts == 1:
        return path
    directory = path.with_name(f"{path.stem}-parts{parts}")
    if not directory.exists():
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        size = path.stat().st_size
        with open(path, "rb") as src:
            for index in range(parts):
                with open(tmp / f"part-{index}.ndjson", "wb") as out:
                    out.write(src.read(size // parts if index < parts - 1 else size))
                    out.write(src.readline())  # to the end of the line
        os.replace(tmp, directory)
    return directory / "part-*.ndjson"


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


def baseline_scenario(
    kind: str,
    workdir: Path,
    input_path: Path,
    n: int,
    *,
    timeout: float | None = None,
    keep: bool = False,
    check: Callable[[Path, Run, int], None] | None = None,
    shape: str = "default",
    name: str | None = None,
) -> Scenario:
    """``python -m bench.baselines KIND`` (``tight`` or ``duckdb``) on ``input_path``,
    records of ``shape``.

    The run must report ``n`` records and its CSV hold every record of the input once
    (``bench.output_check``); ``check(csv_path, run, i)`` may validate more.
    """
    name = name or BASELINE_NAMES[kind]

    def out(i: int) -> Path:
        return workdir / f"{kind}-{shape}-{i}.csv"

    records = expect_records(name, n)
    contents = expect_output(input_path, *shape_columns(shape))

    def validate(run: Run, i: int) -> None:
        records(run, i)
        run.extra["output_bytes"] = out(i).stat().st_size
        contents(f"{name} run {i + 1}", [out(i)])
        if check:
            check(out(i), run, i)

    return Scenario(
        name=name,
        command=lambda i: [sys.executable, "-m", "bench.baselines", kind, input_path, out(i),
                           "--shape", shape],
        records=n,
        prepare=lambda i: _rm(out(i)),
        cleanup=None if keep else (lambda i: _rm(out(i))),
        validate=validate,
        cwd=REPO_ROOT,
        timeout=timeout,
        inputs=[input_path],
    )


def stage_scenario(
    workdir: Path,
    input_path: Path,
    n: int,
    *,
    name: str = STAGE,
    tag: str = "stage",
    timeout: float | None = None,
    keep: bool = False,
    check: Callable[[Path, Run, int], None] | None = None,
    argv: Callable[[Path, int], Sequence[str | os.PathLike[str]]] | None = None,
    workers: int = 1,
    columns: Sequence[str] = FIELDS,
    shape: str = "default",
) -> Scenario:
    """``streamer run``: file source -> local CSV stage (load none), a fresh stage per run,
    of ``columns`` (default: the default shape's) of records of ``shape``.

    The stage must hold every record of the input once (``bench.output_check``);
    ``check(stage_dir, run, i)`` may validate more.
    """
    nested = [c for c in shape_columns(shape)[1] if c in columns]
    contents = expect_output(input_path, columns, nested)

    if workers > 1:
        name, tag = f"{name} ({workers} workers)", f"{tag}-w{workers}"

    def validate(run: Run, run_dir: Path, i: int) -> None:
        files, nbytes = _dir_stats(run_dir / "stage")
        run.extra["output_files"] = files
        run.extra["output_bytes"] = nbytes
        if files == 0:
            raise BenchError(f"{name} run {i + 1}: stage dir is empty")
        contents(f"{name} run {i + 1}", data_files(run_dir / "stage"))
        if check:
            check(run_dir / "stage", run, i)

    files = split_input(input_path, workers)
    return streamer_scenario(
        name, n, workdir, tag,
        lambda d, _i: config_text(d / "data", file_source(files),
                                  stage_sink((d / "stage").as_uri() + "/", columns=columns),
                                  workers=workers),
        sink="stage", argv=argv, check=validate, keep=keep, timeout=timeout, inputs=[files],
    )  # fmt: skip


def build_scenarios(
    args: argparse.Namespace, workdir: Path, input_path: Path, n: int
) -> list[Scenario]:
    tight_digest: dict[int, str] = {}  # run -> sha256 of the tight loop's CSV (verify mode)
    common: dict[str, Any] = {"timeout": args.timeout, "keep": args.keep_outputs}

    def tight_verify(out: Path, run: Run, i: int) -> None:
        rows = _csv_rows(out)
        if rows != n:
            raise BenchError(f"tight loop run {i + 1}: {rows} CSV rows, expected {n}")
        tight_digest[i] = _sha256(out)

    def stage_verify(stage: Path, run: Run, i: int) -> None:
        rows = _count_stage_rows(stage)
        if rows != n:
            raise BenchError(f"streamer run {i + 1}: {rows} rows in stage, expected {n}")
        csvs = [p for p in stage.rglob("*.csv") if p.is_file()]
        if len(csvs) == 1 and i in tight_digest:
            same = _sha256(csvs[0]) == tight_digest[i]
            run.extra["identical_to_tight"] = same
            if not same:
                print(
                    f"  note: streamer run {i + 1} stage CSV differs from the tight "
                    "loop's CSV (same row count)",
                    file=sys.stderr,
                )

    verify = args.verify_output
    scenarios = [
        baseline_scenario("tight", workdir, input_path, n,
                          check=tight_verify if verify else None, **common)
    ]  # fmt: skip
    if not args.only_baselines:
        exe = Path(args.streamer) if args.streamer else streamer_executable()
        if not exe.exists():
            raise SystemExit(
                f"streamer executable not found at {exe} (use --only-baselines to skip it)"
            )
        scenarios.append(
            stage_scenario(workdir, input_path, n, check=stage_verify if verify else None,
                           argv=lambda path, _i: [exe, "run", "-c", path], **common)
        )  # fmt: skip
    if not args.no_duckdb:
        scenarios.append(baseline_scenario("duckdb", workdir, input_path, n, **common))
    return scenarios


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = script_parser(__doc__)
    ap.add_argument("--records", type=int, default=1_000_000)
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

    input_path = prepare_input(workdir, n, args.seed)
    input_bytes = input_path.stat().st_size

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
    base = results[BASELINE_NAMES["tight"]]
    for name in (STAGE, BASELINE_NAMES["duckdb"]):
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
    if STAGE in results:
        internal = [
            r.summary["elapsed_s"]
            for r in results[STAGE].runs
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
        "order": [s.name for s in scenarios],
        "startup": startup,
        "ratios": ratios,
    }
    path = write_results("file_to_stage", ordered, meta, args.results_dir)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
