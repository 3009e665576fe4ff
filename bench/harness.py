"""Small reusable benchmark harness.

* ``run_measured(cmd)`` runs one command as a subprocess and returns a ``Run``: wall
  time, peak RSS of the process *tree* (sum of RSS over the process and all its
  descendants, sampled every 50 ms with psutil), the peak of its summed PSS (shared
  pages counted once in all, from ``/proc/PID/smaps_rollup``), the largest kernel high-water RSS of
  any process of the tree (``VmHWM``, read at each sample: catches a short peak between
  samples), CPU seconds (``wait4``), exit code, and the last JSON line of stderr
  (``summary``; ``streamer run``, ``bench.baselines`` and the other baselines print one).
* ``Scenario`` + ``run_interleaved`` run several commands alternately (A, B, C, A, B,
  C, ...) so that machine noise hits all of them alike; ``Result`` aggregates the runs
  of one scenario (median and min/max).
* ``streamer_scenario`` builds the ``Scenario`` of a ``streamer run`` in a fresh
  directory per repetition that must report every record delivered.
* ``format_table``, ``paired_ratio``, ``machine_info``, ``write_results``: reporting.

The scenario modules (``bench/file_to_stage.py``, ``file_to_s3.py``, ``file_to_td.py``,
``live_to_stage.py``) build ``Scenario`` objects with these; ``bench/run.py`` runs them
all together.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import datetime as _dt
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

__all__ = [
    "REPO_ROOT",
    "RESULTS_DIR",
    "WORKDIR",
    "BenchError",
    "Result",
    "Run",
    "Scenario",
    "Spread",
    "expect_delivered",
    "expect_records",
    "format_table",
    "free_port",
    "machine_info",
    "paired_ratio",
    "run_interleaved",
    "run_measured",
    "script_parser",
    "spread",
    "streamer_executable",
    "streamer_scenario",
    "utc_stamp",
    "write_results",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
WORKDIR = Path(tempfile.gettempdir()) / "streamer-bench"  # inputs (cached) and run dirs

_MIB = 1024 * 1024


class BenchError(RuntimeError):
    """A measured command failed or produced a wrong result."""


@dataclass
class Run:
    """One measured execution of a command."""

    cmd: list[str]
    returncode: int
    wall_s: float
    peak_rss_bytes: int  # max over samples of the summed RSS of the process tree
    hwm_bytes: int  # largest VmHWM (kernel peak RSS) of one process of the tree; 0 if unknown
    cpu_s: float  # user + system CPU of the process and its reaped children
    samples: int
    summary: dict[str, Any] | None  # last stderr line, if it is a JSON object
    stderr_tail: str
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    records: int | None = None  # set when a run's count is its own (wrk: requests made)
    peak_pss_bytes: int = 0  # max over samples of the summed PSS of the tree; 0 if unknown
    processes: int = 0  # the most processes seen in the tree at one sample
    #: with ``complete``: the process's own exit (wall_s and cpu_s are at completion)
    exit_wall_s: float | None = None

    @property
    def peak_rss(self) -> int:
        """Best estimate of the peak: the larger of the tree samples and the largest HWM."""
        return max(self.peak_rss_bytes, self.hwm_bytes)

    @property
    def ok(self) -> bool:
        """Exit code 0 in time, or output complete in time (the harness then stopped it)."""
        if self.timed_out:
            return False
        return self.returncode == 0 or self.exit_wall_s is not None


_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)


@dataclass
class TreeSample:
    rss: int  # summed RSS: a page shared by n processes counts n times
    pss: int  # summed proportional set size: a shared page counts 1/n in each
    hwm: int  # the largest VmHWM among them
    processes: int


def _tree_sample(proc: psutil.Process) -> TreeSample:
    """RSS and PSS summed over ``proc`` and its descendants, the largest VmHWM."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except _GONE:
        return TreeSample(0, 0, 0, 0)
    sample = TreeSample(0, 0, 0, len(procs))
    for p in procs:
        with contextlib.suppress(*_GONE):
            sample.rss += p.memory_info().rss
            sample.pss += _pss(p.pid)
            sample.hwm = max(sample.hwm, _vm_hwm(p.pid))
    return sample


def _pss(pid: int) -> int:
    """Proportional set size of ``pid`` (``/proc/PID/smaps_rollup``; 0 if unreadable).

    Summed over a tree it counts a page that several processes map once in all, which
    summed RSS does not: forked workers share the interpreter, the libraries and the
    pages the supervisor had before the fork.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _vm_hwm(pid: int) -> int:
    """Kernel high-water RSS of ``pid`` (Linux /proc; 0 elsewhere or once it is gone).

    Unlike ``wait4``'s ru_maxrss this is reset by exec, so it does not include the
    harness's own memory (Popen vforks the child from the harness before exec).
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree_cpu_s(proc: psutil.Process) -> float:
    """User + system CPU of ``proc`` and its live descendants (all threads), and of the
    children they have reaped."""
    total = 0.0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except _GONE:
        return total
    for p in procs:
        with contextlib.suppress(*_GONE):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)


def _last_json_line(text: str) -> dict[str, Any] | None:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                return None
            return obj if isinstance(obj, dict) else None
        return None
    return None


def run_measured(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    interval: float = 0.05,
    timeout: float | None = None,
    stdout_path: str | os.PathLike[str] | None = None,
    tail_chars: int = 4000,
    complete: Callable[[], bool] | None = None,
    complete_interval: float = 0.01,
    stop_grace: float = 10.0,
) -> Run:
    """Run ``cmd``, sampling the RSS of its process tree every ``interval`` seconds.

    stdout goes to ``stdout_path`` (default: discarded); stderr is captured via a temp
    file (no pipe, so a chatty child cannot block) and its tail kept in the ``Run``.
    The command is killed (whole tree) after ``timeout`` seconds.  Never raises on a
    non-zero exit: check ``Run.ok``.

    ``complete`` (polled every ``complete_interval`` s) says when the command's output
    is complete, for programs that do not exit when they are done (Fluent Bit exits on
    a timer, up to a second after its last write, or not at all with several inputs):
    then ``wall_s`` and ``cpu_s`` are taken at that moment, the process is sent SIGTERM
    (SIGKILL after ``stop_grace`` s) and its own exit goes to ``exit_wall_s``.
    """
    argv = [os.fspath(c) for c in cmd]
    full_env = None if env is None else {**os.environ, **env}
    with contextlib.ExitStack() as stack:
        err = stack.enter_context(tempfile.TemporaryFile(prefix="bench-stderr-"))
        out: Any = (
            stack.enter_context(open(stdout_path, "wb"))
            if stdout_path is not None
            else subprocess.DEVNULL
        )
        peak = 0
        hwm = 0
        peak_pss = 0
        processes = 0
        samples = 0
        stop = threading.Event()
        timed_out = threading.Event()
        completed: list[float] = []  # [wall, cpu] at the moment ``complete`` said so
        probe_errors: list[str] = []

        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=out, stderr=err)
        try:
            ps = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:  # exited before we could look at it
            ps = None

        def sampler() -> None:
            nonlocal peak, hwm, peak_pss, processes, samples
            while not stop.is_set():
                if ps is not None:
                    tree = _tree_sample(ps)
                    hwm = max(hwm, tree.hwm)
                    samples += 1
                    peak = max(peak, tree.rss)
                    peak_pss = max(peak_pss, tree.pss)
                    processes = max(processes, tree.processes)
                if timeout is not None and time.perf_counter() - t0 > timeout:
                    timed_out.set()
                    _kill_tree(proc.pid)
                    return
                stop.wait(interval)

        def watcher() -> None:
            assert complete is not None
            while not stop.is_set():
                try:
                    done = complete()
                except Exception as exc:  # the run fails with its reason
                    probe_errors.append(f"completion probe failed: {exc!r}\n")
                    _kill_tree(proc.pid)
                    return
                if done:
                    wall_now = time.perf_counter() - t0
                    completed.extend((wall_now, _tree_cpu_s(ps) if ps is not None else 0.0))
                    _stop_after_complete(proc, stop, stop_grace)
                    return
                stop.wait(complete_interval)

        th = threading.Thread(target=sampler, name="rss-sampler", daemon=True)
        th.start()
        threads = [th]
        if complete is not None:
            threads.append(threading.Thread(target=watcher, name="complete", daemon=True))
            threads[-1].start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        except BaseException:
            _kill_tree(proc.pid)
            proc.wait()
            raise
        finally:
            wall = time.perf_counter() - t0
            stop.set()
            for thread in threads:
                thread.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu = ru.ru_utime + ru.ru_stime
        exit_wall = None
        if completed:
            exit_wall, wall, cpu = wall, completed[0], completed[1]

        err.seek(0)
        raw = err.read()
        text = raw.decode("utf-8", errors="replace") + "".join(probe_errors)
    return Run(
        cmd=argv,
        returncode=proc.returncode,
        wall_s=wall,
        peak_rss_bytes=peak,
        hwm_bytes=hwm,
        cpu_s=cpu,
        samples=samples,
        summary=_last_json_line(text),
        stderr_tail=text[-tail_chars:],
        timed_out=timed_out.is_set(),
        peak_pss_bytes=peak_pss,
        processes=processes,
        exit_wall_s=exit_wall,
    )


def _stop_after_complete(proc: subprocess.Popen[bytes], stop: threading.Event,
                         grace: float) -> None:
    """SIGTERM the measured process once its output is complete; SIGKILL its tree if it
    has not exited after ``grace`` seconds (``stop`` is set when it has)."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    if not stop.wait(grace):
        _kill_tree(proc.pid)


@dataclass(frozen=True)
class Spread:
    median: float
    min: float
    max: float

    def fmt(self, scale: float = 1.0, digits: int = 0) -> str:
        m, lo, hi = (round(v / scale, digits) for v in (self.median, self.min, self.max))
        if digits == 0:
            m, lo, hi = int(m), int(lo), int(hi)
        return f"{m:,} ({lo:,}-{hi:,})"


def spread(values: Sequence[float]) -> Spread:
    if not values:
        return Spread(float("nan"), float("nan"), float("nan"))
    return Spread(statistics.median(values), min(values), max(values))


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


@dataclass
class Result:
    """All runs of one scenario."""

    name: str
    records: int
    runs: list[Run] = field(default_factory=list)

    @property
    def wall(self) -> Spread:
        return spread([r.wall_s for r in self.runs])

    def rate(self, run: Run) -> float:
        """Records per second of one run (its own count when it has one)."""
        records = self.records if run.records is None else run.records
        return records / run.wall_s if run.wall_s > 0 else float("nan")

    @property
    def records_per_s(self) -> Spread:
        return spread([self.rate(r) for r in self.runs if r.wall_s > 0])

    @property
    def peak_rss(self) -> Spread:
        return spread([r.peak_rss for r in self.runs])

    @property
    def peak_pss(self) -> Spread:
        return spread([r.peak_pss_bytes for r in self.runs])

    @property
    def processes(self) -> int:
        return max((r.processes for r in self.runs), default=0)

    @property
    def cpu(self) -> Spread:
        return spread([r.cpu_s for r in self.runs])

    def to_dict(self) -> dict[str, Any]:
        def sd(s: Spread) -> dict[str, float]:
            return asdict(s)

        return {
            "name": self.name,
            "records": self.records,
            "records_per_s": sd(self.records_per_s),
            "wall_s": sd(self.wall),
            "peak_rss_bytes": sd(self.peak_rss),
            "peak_pss_bytes": sd(self.peak_pss),
            "cpu_s": sd(self.cpu),
            "runs": [
                {
                    "wall_s": r.wall_s,
                    "records": self.records if r.records is None else r.records,
                    "records_per_s": self.rate(r) if r.wall_s > 0 else None,
                    "peak_rss_bytes": r.peak_rss,
                    "tree_rss_sampled_bytes": r.peak_rss_bytes,
                    "max_vm_hwm_bytes": r.hwm_bytes,
                    "peak_pss_bytes": r.peak_pss_bytes,
                    "processes": r.processes,
                    "cpu_s": r.cpu_s,
                    "samples": r.samples,
                    "returncode": r.returncode,
                    "exit_wall_s": r.exit_wall_s,
                    "summary": r.summary,
                    **r.extra,
                }
                for r in self.runs
            ],
        }


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
                f"wall {run.wall_s:6.2f}s  peak RSS {run.peak_rss / _MIB:7.1f} MiB  "
                f"PSS {run.peak_pss_bytes / _MIB:7.1f} MiB  cpu {run.cpu_s:6.2f}s"
            )
    return results


def paired_ratio(a: Result, b: Result) -> Spread:
    """Per-repetition ratio of records/s, a over b (runs paired by index)."""
    return spread(
        [
            a.rate(ra) / b.rate(rb)
            for ra, rb in zip(a.runs, b.runs, strict=False)
            if ra.wall_s > 0 and rb.wall_s > 0
        ]
    )


def format_table(results: Sequence[Result]) -> str:
    width = max([len("scenario"), *(len(r.name) for r in results)])
    head = (
        f"{'scenario':<{width}} {'records/s median (min-max)':>32} {'wall s median':>14} "
        f"{'peak RSS MiB median (min-max)':>30} {'peak PSS MiB':>13} {'cpu s':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.name:<{width}} {r.records_per_s.fmt():>32} {r.wall.median:>14.2f} "
            f"{r.peak_rss.fmt(_MIB, 1):>30} {r.peak_pss.median / _MIB:>13.1f} "
            f"{r.cpu.median:>7.2f}"
        )
    return "\n".join(lines)


def _git_rev() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "mem_total_bytes": vm.total,
        "loadavg": list(os.getloadavg()),
        "git_rev": _git_rev(),
    }


def utc_stamp() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def write_results(
    scenario: str,
    results: Sequence[Result],
    meta: Mapping[str, Any],
    results_dir: str | os.PathLike[str] = RESULTS_DIR,
) -> Path:
    """Write ``<results_dir>/<scenario>-<UTC stamp>.json``; return its path."""
    out_dir = Path(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{scenario}-{utc_stamp()}.json"
    doc = {
        "scenario": scenario,
        "utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        **meta,
        "results": [r.to_dict() for r in results],
    }
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return path


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
