"""Scenarios: a command to measure repeatedly (``Scenario``), run alternately with
the others (``run_interleaved``: A, B, C, A, B, C, ... so that machine noise hits all of
them alike), and the ``Scenario`` of a ``streamer run`` in a fresh directory per
repetition (``streamer_scenario``) with its validators and the scripts' options."""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.measure import BenchError, Run, run_measured
from bench.outcomes import MIB, Result
from bench.paths import REPO_ROOT, WORKDIR


@dataclass
class Scenario:
    """A command to measure repeatedly.

    ``command(i)`` builds the argv for repetition ``i``; ``prepare(i)`` / ``cleanup(i)``
    run outside the measurement (fresh dirs, config files, deleting outputs);
    ``validate(run, i)`` raises ``BenchError`` if the run's result is wrong and may put
    extra facts into ``run.extra``.  ``records`` is the per-run record count used for
    records/s.  ``inputs`` (paths or globs) are read before every run, unmeasured.
    ``complete(i)``, when given, returns the probe of repetition ``i`` that says its
    output is complete: the run is measured to that moment (``run_measured``).
    """

    name: str
    command: Callable[[int], Sequence[str | os.PathLike[str]]]
    records: int
    prepare: Callable[[int], None] | None = None
    cleanup: Callable[[int], None] | None = None
    validate: Callable[[Run, int], None] | None = None
    cwd: str | os.PathLike[str] | None = None
    env: Mapping[str, str] | None = None
    timeout: float | None = None
    inputs: Sequence[Path] = ()
    complete: Callable[[int], Callable[[], bool]] | None = None


def with_service(scenario: Scenario, start: Callable[[], None],
                 stop: Callable[[], None]) -> Scenario:
    """``scenario`` with a service (a receiver, a broker) started before each
    repetition's ``prepare`` and stopped after its ``cleanup``, even a failed one."""
    prepare, cleanup = scenario.prepare, scenario.cleanup

    def start_then_prepare(i: int) -> None:
        start()
        if prepare:
            prepare(i)

    def cleanup_then_stop(i: int) -> None:
        try:
            if cleanup:
                cleanup(i)
        finally:
            stop()

    scenario.prepare, scenario.cleanup = start_then_prepare, cleanup_then_stop
    return scenario


def compile_sources() -> None:
    """Byte-compile streamer/ and bench/ as installing a package does.  This sandbox
    sets PYTHONDONTWRITEBYTECODE=1 and the checkout is an editable install, so every
    measured process would otherwise compile them from source: 0.1 s of the 0.35-0.45 s
    start-up of a supervisor and two workers."""
    for directory in ("streamer", "bench"):
        compileall.compile_dir(REPO_ROOT / directory, quiet=1)


def warm_page_cache(paths: Sequence[Path]) -> None:
    """Read the files (a path may be a glob) so that the run reads them from memory.

    Reading each input once before all the runs is not enough on this VM: a DAMON
    "pageout" scheme reclaims pages left untouched for about a minute, so the first
    run of a repetition read its input from disk (a two-worker stage run of 1M records
    took 4.1 s instead of 2.5-2.8 s, and the tight loop was slowed too).
    """
    buffer = bytearray(8 << 20)
    for path in paths:
        for file in sorted(path.parent.glob(path.name)) if "*" in path.name else [path]:
            with open(file, "rb", buffering=0) as fh:
                while fh.readinto(buffer):
                    pass


def run_interleaved(
    scenarios: Sequence[Scenario],
    runs: int,
    *,
    log: Callable[[str], None] | None = None,
) -> dict[str, Result]:
    """Run every scenario ``runs`` times, alternating between them each repetition.

    Raises ``BenchError`` (after ``cleanup``) on a failed or invalid run.
    """
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    results = {s.name: Result(s.name, s.records) for s in scenarios}
    compile_sources()
    for i in range(runs):
        for s in scenarios:
            warm_page_cache(s.inputs)
            if s.prepare:
                s.prepare(i)
            try:
                run = run_measured(s.command(i), cwd=s.cwd, env=s.env, timeout=s.timeout,
                                   complete=s.complete(i) if s.complete else None)
                if not run.ok:
                    why = "timed out" if run.timed_out else f"exit code {run.returncode}"
                    raise BenchError(
                        f"{s.name} run {i + 1}: {why}\ncmd: {' '.join(run.cmd)}\n"
                        f"stderr tail:\n{run.stderr_tail}"
                    )
                if s.validate:
                    s.validate(run, i)
            finally:
                if s.cleanup:
                    s.cleanup(i)
            results[s.name].runs.append(run)
            say(
                f"  run {i + 1}/{runs} {s.name:<20} {results[s.name].rate(run):>12,.0f} rec/s "
                f"wall {run.wall_s:6.2f}s  peak RSS {run.peak_rss / MIB:7.1f} MiB  "
                f"PSS {run.peak_pss_bytes / MIB:7.1f} MiB  cpu {run.cpu_s:6.2f}s"
            )
    return results


def streamer_executable() -> Path:
    """The ``streamer`` console script of the running interpreter's environment."""
    return Path(sys.executable).parent / "streamer"


def script_parser(doc: str) -> argparse.ArgumentParser:
    """The options every scenario script has: ``--runs``, ``--seed``, ``--workdir``."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario")
    parser.add_argument("--seed", type=int, default=1, help="bench.gen seed")
    parser.add_argument("--workdir", type=Path, default=WORKDIR,
                        help="input cache and run dirs (default: %(default)s)")
    return parser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def expect_delivered(sink: str, records: int) -> Callable[[Run, int], None]:
    """A Scenario validator: the streamer summary says `sink` delivered `records`."""

    def check(run: Run, i: int) -> None:
        got = (run.summary or {}).get("sinks", {}).get(sink, {}).get("delivered")
        if got != records:
            raise BenchError(f"run {i + 1}: {sink} delivered={got!r}, expected {records}")

    return check


def expect_records(name: str, records: int) -> Callable[[Run, int], None]:
    """A Scenario validator for baselines: their JSON summary line says ``records``."""

    def check(run: Run, i: int) -> None:
        got = (run.summary or {}).get("records")
        if got != records:
            raise BenchError(f"{name} run {i + 1}: records={got!r}, expected {records}")

    return check


def streamer_scenario(
    name: str,
    records: int,
    workdir: Path,
    tag: str,
    config: Callable[[Path, int], str],
    *,
    sink: str,
    argv: Callable[[Path, int], Sequence[str | os.PathLike[str]]] | None = None,
    check: Callable[[Run, Path, int], None] | None = None,
    keep: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    inputs: Sequence[Path] = (),
) -> Scenario:
    """A ``streamer run`` in a fresh directory ``workdir/<tag>-<i>`` per repetition ``i``.

    ``config(run_dir, i)`` returns the TOML text (its data dir and any local stage go
    under ``run_dir``); it is written to ``run_dir/streamer.toml`` before the run, and
    ``run_dir`` is deleted after it unless ``keep``.  ``argv(config_path, i)`` is the
    measured command (default ``streamer run -c CONFIG``; the live driver wraps it).
    The run must report ``sink`` delivered ``records``; ``check(run, run_dir, i)`` may
    validate more and record facts in ``run.extra``.
    """

    def run_dir(i: int) -> Path:
        return workdir / f"{tag}-{i}"

    def prepare(i: int) -> None:
        shutil.rmtree(run_dir(i), ignore_errors=True)
        run_dir(i).mkdir(parents=True)
        (run_dir(i) / "streamer.toml").write_text(config(run_dir(i), i), encoding="utf-8")

    def command(i: int) -> Sequence[str | os.PathLike[str]]:
        path = run_dir(i) / "streamer.toml"
        return argv(path, i) if argv else [streamer_executable(), "run", "-c", path]

    delivered = expect_delivered(sink, records)

    def validate(run: Run, i: int) -> None:
        if run.summary is None:
            raise BenchError(
                f"{name} run {i + 1}: the last stderr line is not a JSON summary\n"
                f"stderr tail:\n{run.stderr_tail}"
            )
        delivered(run, i)
        if check:
            check(run, run_dir(i), i)

    def cleanup(i: int) -> None:
        if not keep:
            shutil.rmtree(run_dir(i), ignore_errors=True)

    return Scenario(
        name=name,
        command=command,
        records=records,
        prepare=prepare,
        cleanup=cleanup,
        validate=validate,
        cwd=REPO_ROOT,
        env=env,
        timeout=timeout,
        inputs=inputs,
    )
