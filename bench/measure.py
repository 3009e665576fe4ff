"""One command run as a subprocess and measured: ``run_measured(cmd)`` -> ``Run``.

Wall time, peak RSS of the process *tree* (sum of RSS over the process and all its
descendants, sampled every 50 ms with psutil), the peak of its summed PSS (shared
pages counted once in all, from ``/proc/PID/smaps_rollup``), the largest kernel
high-water RSS of any process of the tree (``VmHWM``, read at each sample: catches a
short peak between samples), CPU seconds (``wait4``), exit code, and the last JSON line
of stderr (``summary``; ``streamer run``, ``bench.baselines`` and the other baselines
print one).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psutil


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
    return _proc_bytes(pid, "smaps_rollup", b"Pss:")


def _vm_hwm(pid: int) -> int:
    """Kernel high-water RSS of ``pid`` (Linux /proc; 0 elsewhere or once it is gone).

    Unlike ``wait4``'s ru_maxrss this is reset by exec, so it does not include the
    harness's own memory (Popen vforks the child from the harness before exec).
    """
    return _proc_bytes(pid, "status", b"VmHWM:")


def _proc_bytes(pid: int, name: str, key: bytes) -> int:
    """The ``key`` line of ``/proc/PID/<name>`` (in kB) in bytes; 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            for line in f:
                if line.startswith(key):
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
