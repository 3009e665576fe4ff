"""`workers = N`: the parent process runs N workers and only supervises.

Each worker is `streamer run --shard I/N` on the same config file: a whole
pipeline over its share of the input (supervisor/shards.py).  The supervisor
forwards SIGTERM, SIGINT and SIGHUP, restarts a worker that dies while it
should be running (it resumes from its own checkpoints; in a one-shot run only one
killed by a signal, not one that stopped with a failure code), serves the merged
/metrics and /health, talks to systemd, and prints one summary: the sum of
the workers' own.  Returns an exit code; never exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

import orjson

from streamer.config.root import Config
from streamer.datadir.files import read_json
from streamer.datadir.layout import DataDir
from streamer.observability.metrics import incomplete
from streamer.observability.progress import finite_run
from streamer.observability.systemd import Notifier
from streamer.runtime.exit import ExitCode, exit_now
from streamer.runtime.memory import unmap_shared_library_pages
from streamer.runtime.signals import act_on_held, holder, take_held
from streamer.runtime.stdio import err_line, flush_both
from streamer.supervisor.lifeline import SUPERVISOR_PID_ENV, end_with_parent
from streamer.supervisor.shards import Shard
from streamer.supervisor.spawn import ForkedProcess, pidfd_available, spawn_holding_signals

if TYPE_CHECKING:  # prometheus-client is loaded only with the metrics API
    from prometheus_client.metrics_core import Metric

log = logging.getLogger("streamer.supervisor")

RESTART_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# what only the supervisor may use: the workers are not the service systemd sees
_PRIVATE_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def add_summaries(summaries: list[dict]) -> dict:
    """Numbers summed key by key, nested dicts merged."""
    total: dict = {}
    for summary in summaries:
        for key, value in summary.items():
            if isinstance(value, dict):
                total[key] = add_summaries([total.get(key, {}), value])
            elif isinstance(value, int | float) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
            else:
                total.setdefault(key, value)
    return total


def _supervisor_process_metrics() -> list[Metric]:
    """The supervisor's own process_* families, labelled worker="supervisor"
    (its workers' carry their index)."""
    from prometheus_client import ProcessCollector

    families = list(ProcessCollector(registry=None).collect())
    for family in families:
        family.samples[:] = [sample._replace(labels={**sample.labels, "worker": "supervisor"})
                             for sample in family.samples]
    return families


def can_fork_workers() -> bool:
    if threading.active_count() > 1:  # a thread's locks would be copied held
        return False
    return pidfd_available()


def fork_workers(cfg: Config, worker_main: Callable[[Shard], int],
                 supervisor_only: Sequence[socket.socket] = ()) -> dict[int, ForkedProcess]:
    """Start every worker by forking this process, before it has an event loop
    or a thread: a worker begins with the modules imported and the config
    validated, about 0.2 s sooner and 0.2 s of CPU cheaper than a fresh
    interpreter.  A restart starts a fresh interpreter (a process whose event
    loop runs must not fork).  Each child closes `supervisor_only` (the API's
    socket), runs `worker_main` and exits.  None forked (the supervisor then
    starts fresh interpreters) when an import left a thread running."""
    import_worker_modules(cfg)
    if not can_fork_workers():
        return {}
    forked = {}
    supervisor = os.getpid()
    for index in range(cfg.workers):
        clear_worker_files(DataDir(cfg.data_path).for_worker(index))
        flush_both()  # nothing buffered is written twice
        pid = os.fork()
        if pid == 0:
            take_held(holder())  # the supervisor acts on them and signals its workers
            for sock in supervisor_only:
                sock.close()
            _become_worker(index, cfg.workers, worker_main, supervisor)
        forked[index] = ForkedProcess(pid)
    return forked


def import_worker_modules(cfg: Config) -> None:
    """Import, once and before the fork, what every worker would import after it:
    the pipeline, the classes of the configured sources and sinks (DuckDB for a
    stage), the event loop.  A worker then starts without those imports (about
    0.15 s of CPU each), and their code and data stay pages the processes share.
    `gc.freeze()` keeps the objects made so far out of every later collection: a
    collection writes to each object it looks at, which would copy the page."""
    import streamer.app  # noqa: F401
    from streamer.pipeline.registry import sink_class, source_class

    for source in cfg.sources.values():
        source_class(source.type)
    for sink in cfg.sinks.values():
        sink_class(sink.type)
    if cfg.api.listen:  # each worker's metrics registry
        import prometheus_client  # noqa: F401
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401
    gc.collect()
    gc.freeze()


def _become_worker(index: int, count: int, worker_main: Callable[[Shard], int],
                   supervisor: int) -> NoReturn:
    code: int = ExitCode.FAILURE
    try:
        end_with_parent(supervisor)  # no orphan: it ends when the supervisor does
        # what a fresh worker gets from Worker.start: a session of its own,
        # stdin for worker 0 only, no systemd variables
        os.setsid()
        if index != 0:
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
        for name in _PRIVATE_ENV:
            os.environ.pop(name, None)
        code = worker_main(Shard(index, count))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else ExitCode.FAILURE
    except BaseException:  # a child must never return into the supervisor's code
        log.exception("worker %d failed", index)
    finally:
        exit_now(code)


def clear_worker_files(data_dir: DataDir) -> None:
    for path in (data_dir.api_port, data_dir.summary, data_dir.final_metrics):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class Worker:
    def __init__(self, index: int, count: int, command: list[str], data_dir: DataDir,
                 forked: ForkedProcess | None = None, lock_fd: int | None = None) -> None:
        self.index = index
        self.dir = data_dir.for_worker(index)
        self.command = [*command, "--shard", f"{index}/{count}"]
        self.process: asyncio.subprocess.Process | ForkedProcess | None = None
        self.forked = forked  # already running: the first start is done
        self.lock_fd = lock_fd  # the data_dir lock: a worker keeps it while it runs
        self.restarts = 0
        self.exit_code: int | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def signal(self, signum: int) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    async def start(self) -> None:
        if self.forked is not None:
            self.process, self.forked = self.forked, None
            return
        clear_worker_files(self.dir)
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        env[SUPERVISOR_PID_ENV] = str(os.getpid())  # it ends when the supervisor does
        stdin = None if self.index == 0 else asyncio.subprocess.DEVNULL
        # a session of its own: a Ctrl-C on the terminal reaches the supervisor only,
        # which forwards it once (a worker signalled twice forces its exit)
        if pidfd_available():  # a signal forwarded before its first line is held
            self.process = spawn_holding_signals(self.command, env, self.index != 0,
                                                 self.lock_fd)
            return
        self.process = await asyncio.create_subprocess_exec(
            *self.command, env=env, stdin=stdin, start_new_session=True,
            pass_fds=() if self.lock_fd is None else (self.lock_fd,))

    def summary(self) -> dict | None:
        return read_json(self.dir.summary, None)


class Supervisor:
    def __init__(self, cfg: Config, worker_command: list[str],
                 forked: dict[int, ForkedProcess] | None = None,
                 lock_fd: int | None = None, api_sock: socket.socket | None = None) -> None:
        """`worker_command` starts a worker (`--shard I/N` is appended); `forked`:
        workers already started by `fork_workers`; `lock_fd`: the data_dir lock the
        supervisor holds, which workers it starts inherit (forked ones already have it);
        `api_sock`: the API's socket, bound before the workers started."""
        self._cfg = cfg
        self._api_sock = api_sock
        forked = forked or {}
        data_dir = DataDir(cfg.data_path)
        self._workers = [Worker(i, cfg.workers, worker_command, data_dir, forked.get(i), lock_fd)
                         for i in range(cfg.workers)]
        self._stopping = asyncio.Event()
        self._signals = 0
        self._hangups = 0  # SIGHUPs its loop handler saw (a held one may be the same)
        self._stop_signal = signal.SIGTERM  # the first one received
        # a one-shot run: a worker that exits with a failure code is not restarted (a
        # killed one still is: it resumes from its checkpoints)
        self._finite = finite_run(cfg)

    def _own_metrics(self) -> list:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

        up = GaugeMetricFamily("streamer_worker_up", "1 while the worker process runs",
                               labels=["worker"])
        restarts = CounterMetricFamily("streamer_worker_restarts",
                                       "Worker processes restarted after dying",
                                       labels=["worker"])
        for worker in self._workers:
            up.add_metric([str(worker.index)], 1.0 if worker.alive else 0.0)
            restarts.add_metric([str(worker.index)], worker.restarts)
        return [up, restarts, *_supervisor_process_metrics()]

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            self._hangups += 1
            if self._stopping.is_set():
                log.info("SIGHUP ignored: shutting down")
                return
            log.info("SIGHUP: every worker reloads the config")
        else:
            self._signals += 1
            if not self._stopping.is_set():
                self._stop_signal = signum
            self._stopping.set()
            log.info("%s received: %s %d workers", name,
                     "stopping" if self._signals == 1 else "forcing", len(self._workers))
        for worker in self._workers:
            worker.signal(signum)

    async def _keep(self, worker: Worker) -> None:
        """Run the worker until it finishes, restarting it when it dies early."""
        while True:
            await worker.start()
            if self._stopping.is_set() and self._signals:  # a signal came before it started
                worker.signal(self._stop_signal)
            code = await worker.process.wait()
            if code == ExitCode.OK or self._stopping.is_set():
                worker.exit_code = code
                return
            if code > 0 and self._finite:  # it stopped on a failure a restart does not mend
                # the worker logged the cause as its own ERROR line: one is what an
                # operator should see, so this note refers to it without repeating it
                log.warning("worker %d stopped with code %d (it logged why, above): "
                            "a one-shot run does not restart it (what it read and did not "
                            "deliver is the summary's in_flight; a file source reads it "
                            "again at the next run)", worker.index, code)
                worker.exit_code = code
                return
            delay = RESTART_DELAYS_S[min(worker.restarts, len(RESTART_DELAYS_S) - 1)]
            worker.restarts += 1
            log.error("worker %d exited with %s; restarting it in %.1fs (it resumes from its "
                      "checkpoints)", worker.index,
                      f"signal {-code}" if code < 0 else f"code {code}", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                worker.exit_code = code
                return

    async def _kill_after_deadline(self) -> None:
        await self._stopping.wait()
        await asyncio.sleep(self._cfg.shutdown_timeout_s + 10)
        for worker in self._workers:
            if worker.alive:
                log.error("worker %d still running past the shutdown deadline: killed",
                          worker.index)
                worker.signal(signal.SIGKILL)

    async def _announce(self, notifier: Notifier) -> None:
        port_files = [w.dir.api_port for w in self._workers]
        while not all(p.exists() for p in port_files):
            await asyncio.sleep(0.1)
        notifier.notify("READY=1")
        await notifier.run(lambda: (
            f"{sum(w.alive for w in self._workers)} of {len(self._workers)} workers running, "
            f"{sum(w.restarts for w in self._workers)} restarts"))

    async def run(self) -> int:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        early = holder()  # signals sent while streamer started: acted on as if sent now
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signum, self._on_signal, signum)
        act_on_held(early, self._on_signal, self._stopping.is_set,  # a worker holds a
                    lambda: self._on_signal(signal.SIGHUP),  # SIGHUP until it can reload
                    lambda: self._hangups > 0)
        api = None
        if self._cfg.api.listen:
            from streamer.supervisor.merged_api import (
                WorkerApi,  # aiohttp: loaded only when serving
            )

            api = WorkerApi(self._cfg.api.listen,
                            {w.index: w.dir.api_port for w in self._workers},
                            {w.index: w.dir.final_metrics for w in self._workers},
                            self._own_metrics, self._api_sock,
                            lambda index: self._workers[index].exit_code == ExitCode.OK)
            await api.start()
        notifier = Notifier()
        helpers = [asyncio.create_task(self._kill_after_deadline(), name="deadline"),
                   asyncio.create_task(self._announce(notifier), name="sd_notify")]
        log.info("running %d workers", len(self._workers))
        unmap_shared_library_pages()  # its workers are forked: it needs few of them
        try:
            await asyncio.gather(*(self._keep(w) for w in self._workers))
        finally:
            notifier.notify("STOPPING=1")
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            notifier.close()
            for worker in self._workers:  # cancelled (an exception here): no orphans
                worker.signal(signal.SIGKILL)
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            if api is not None:
                await api.stop()
        codes = [w.exit_code for w in self._workers]
        code = ExitCode.OK if all(c == ExitCode.OK for c in codes) else ExitCode.FAILURE
        summaries = [s for s in (w.summary() for w in self._workers) if s is not None]
        summary = add_summaries([{k: v for k, v in s.items()
                                  if k not in ("elapsed_s", "exit_code")} for s in summaries])
        summary["workers"] = {str(w.index): {"exit_code": w.exit_code, "restarts": w.restarts}
                              for w in self._workers}
        if self._finite and incomplete(summary):
            code = ExitCode.FAILURE  # a one-shot load that did not load everything
        summary["elapsed_s"] = round(time.monotonic() - started, 3)
        summary["exit_code"] = code
        err_line(orjson.dumps(summary).decode())
        return code
