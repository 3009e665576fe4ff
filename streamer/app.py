"""Process lifecycle: start the API and the pipeline, handle signals, enforce
the shutdown deadline, report a summary.  Returns an exit code; never exits."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import orjson

from streamer.config.root import Config
from streamer.datadir.files import StateFileUnreadable, write_atomic, write_json
from streamer.network.certificates import quiet_unretrieved_certificate_errors
from streamer.observability.logs import flush_suppressed, report
from streamer.observability.metrics import Metrics, incomplete
from streamer.observability.progress import finite_run, start_progress
from streamer.observability.systemd import Notifier
from streamer.pipeline.graph import Pipeline
from streamer.pipeline.reloader import Reloader
from streamer.pipeline.retire import StateNotSaved
from streamer.runtime import give_up
from streamer.runtime.exit import ExitCode
from streamer.runtime.memory import release_startup_memory, unmap_shared_library_pages
from streamer.runtime.signals import act_on_held, holder
from streamer.runtime.stdio import err_line
from streamer.sinks.stage.store.retry import FatalStageError, StageRefused
from streamer.supervisor.shards import Shard, shard_config

log = logging.getLogger("streamer")


def status_line(metrics: Metrics) -> str:
    sinks = metrics.sinks.values()
    return (f"read {sum(s.records for s in metrics.sources.values())} records; "
            f"delivered {sum(s.delivered for s in sinks)}, "
            f"dead-lettered {sum(s.dead_lettered for s in sinks)}, "
            f"in flight {sum(s.in_flight for s in sinks)}")


async def _after_start(notifier: Notifier, pipeline: Pipeline, runner: asyncio.Task,
                       single_process: bool) -> None:
    """Once every component runs: start-up memory back to the kernel, READY=1, then
    STATUS lines and WATCHDOG pings."""
    started = asyncio.create_task(pipeline.started.wait())
    await asyncio.wait({started, runner}, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if not pipeline.started.is_set():
        return
    if single_process:
        release_startup_memory()
    else:  # the kernel pages out only what one process maps (runtime/memory.py)
        unmap_shared_library_pages()
    if not notifier.enabled:
        return
    notifier.notify("READY=1", f"STATUS={status_line(pipeline.metrics)}")
    await notifier.run(lambda: status_line(pipeline.metrics))


async def run(cfg: Config, progress: bool = True, config_path: str | None = None,
              shard: Shard | None = None) -> int:
    """`shard`: this process is one worker of several (see streamer/supervisor/shards.py)."""
    started = time.monotonic()
    metrics = Metrics(exposed=bool(cfg.api.listen))  # no API: prometheus-client not loaded
    pipeline = Pipeline(cfg, metrics, shard)
    if shard is None:  # workers share their ports (SO_REUSEPORT): nothing to probe
        taken = await _taken_listen_address(cfg)
        if taken is not None:
            return _cannot_listen(*taken, "", metrics, started)
        if finite_run(cfg):  # a daemon waits for the bucket (degraded); a one-shot says so
            refusals = await refused_stages(cfg)
            for key, problem in refusals:  # a config line each, as for a stage directory
                report(problem, logger="streamer.config", key=key)
            if refusals:
                return _nothing_read([], metrics, started)
    api = None
    if cfg.api.listen:
        from streamer.observability.api import ApiServer  # aiohttp: loaded only when serving

        api = ApiServer(cfg.api.listen, metrics, pipeline.source_states, cfg.api.unhealthy_after_s)
        try:
            await api.start()
        except OSError as exc:  # the port is taken, the host is not ours...
            return _cannot_listen("api.listen", cfg.api.listen, exc, " (choose a free port, or "
                                  'listen = "" to turn the API off)', metrics, started)
    if shard is not None:
        # the supervisor's sign that this worker is up, and where its API is
        write_json(pipeline.context.data_dir.api_port, api.port if api is not None else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    quiet_unretrieved_certificate_errors(loop)
    runner = asyncio.create_task(pipeline.run(stop), name="pipeline")
    status_display = start_progress(cfg, metrics, progress)  # finite runs on a terminal
    notifier = Notifier()
    status = asyncio.create_task(_after_start(notifier, pipeline, runner, shard is None),
                                 name="sd_notify")
    forced: list[str] = []
    gave_up: list[give_up.GaveUp] = []
    watchdog = _watch_sinks(cfg, metrics, runner, gave_up)

    def force(reason: str) -> None:
        if not forced and not runner.done():
            forced.append(reason)
            log.warning("forcing exit (%s): undelivered data stays recoverable from "
                        "checkpoints and journals", reason)
            runner.cancel()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            force(f"second {signal.Signals(signum).name}")
            return
        deadline = pipeline.config.shutdown_timeout_s  # a reload may have changed it
        log.info("%s received: stopping sources and draining sinks (deadline %.0fs; send "
                 "again to force)", signal.Signals(signum).name, deadline)
        stop.set()
        notifier.notify("STOPPING=1", "STATUS=draining")
        loop.call_later(deadline, force, "shutdown deadline passed")

    def on_hangup() -> None:
        if stop.is_set() or runner.done():
            log.info("SIGHUP ignored: shutting down")
        else:
            reloader.request()

    early = holder()  # signals sent while streamer started: acted on as if sent now
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    # a worker runs its shard's version of the file: so is every reloaded config
    reloader = Reloader(config_path, pipeline, None if shard is None else
                        lambda new: shard_config(new, shard)) if config_path else None
    if reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    else:  # no file to read again
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    act_on_held(early, on_signal, stop.is_set,
                on_hangup if reloader is not None else _no_reload,
                lambda: reloader is not None and reloader.requests > 0)
    code = ExitCode.OK
    try:
        await runner
    except asyncio.CancelledError:
        if not forced and not gave_up:
            raise
        code = ExitCode.FAILURE
    except StateNotSaved as exc:  # each failure is logged already: no traceback
        failure = _stopped_by(exc)
        if failure is not None:  # what stopped the run, not only what its stop missed
            log.error("pipeline failed", exc_info=failure)
        log.error("%s", exc)
        code = ExitCode.FAILURE
    except StageRefused as exc:  # a one-shot run: retrying would go on until killed
        log.error("%s; retrying does not mend this (the bucket or the credentials need an "
                  "operator): stopping; what was read and not staged is in the summary's "
                  "in_flight, and a file source reads it again at the next run", exc)
        code = ExitCode.FAILURE
    except (StateFileUnreadable, FatalStageError) as exc:  # said whole: no traceback
        log.error("%s", exc)
        code = ExitCode.FAILURE
    except Exception:
        log.exception("pipeline failed")
        code = ExitCode.FAILURE
    finally:
        status.cancel()
        if watchdog is not None:
            watchdog.cancel()
        if not stop.is_set():  # a finite run ending by itself
            notifier.notify("STOPPING=1")
        notifier.close()
        for signum in (signal.SIGTERM, signal.SIGINT):  # SIGHUP stays: ignored from now
            loop.remove_signal_handler(signum)
        if reloader is not None:
            await reloader.close()
        if api is not None:
            if shard is not None:  # the supervisor serves a finished worker's last values
                _keep_final_metrics(pipeline.context.data_dir.final_metrics, api.exposition())
            await api.stop()
    if status_display is not None:
        status_display.stop()
    flush_suppressed()  # pending "repeated N times" lines go before the summary
    if gave_up and not forced:  # the last line before the summary: final counts
        log.error("%s", give_up.report(gave_up[0], metrics.sink(gave_up[0].sink),
                                       cfg.oneshot_give_up_s))
    summary = metrics.summary()
    if code == ExitCode.OK and shard is None and finite_run(cfg) and incomplete(summary):
        code = ExitCode.FAILURE  # a one-shot load that did not load everything
    summary["elapsed_s"] = round(time.monotonic() - started, 3)
    summary["exit_code"] = code
    if shard is not None:
        write_json(pipeline.context.data_dir.summary, summary)
        return code
    err_line(orjson.dumps(summary).decode())
    return code


def _watch_sinks(cfg: Config, metrics: Metrics, runner: asyncio.Task,
                 gave_up: list[give_up.GaveUp]) -> asyncio.Task | None:
    """A finite run: the task that stops it once a sink cannot make progress."""
    if not finite_run(cfg):
        return None

    def stop_run(task: asyncio.Task) -> None:
        if not task.cancelled() and not runner.done():
            gave_up.append(task.result())
            runner.cancel()

    watchdog = asyncio.create_task(give_up.watch(metrics, give_up.destinations(cfg),
                                                 cfg.oneshot_give_up_s), name="give-up")
    watchdog.add_done_callback(stop_run)
    return watchdog


def _keep_final_metrics(path: Path, exposition: bytes) -> None:
    try:
        write_atomic(path, exposition, fsync=False)
    except OSError as exc:  # the run's outcome stands; only the merged /metrics lacks it
        log.warning("cannot keep this worker's last metrics in %s: %s", path, exc)


def _no_reload() -> None:
    log.info("SIGHUP ignored: no config file to read again")


def _stopped_by(not_saved: StateNotSaved) -> BaseException | None:
    """The error that stopped the run, when a failure (a sink's, a source's) and
    not a signal led to the stop whose checkpoints could not be saved."""
    seen = not_saved.__context__
    while seen is not None:
        if not isinstance(seen, asyncio.CancelledError) and seen is not not_saved.__cause__:
            return seen
        seen = seen.__context__
    return None


async def _taken_listen_address(cfg: Config) -> tuple[str, str, OSError] | None:
    """A socket source's address that cannot be listened on (taken by another
    process...), tried before any source starts: (key, address, error)."""
    from streamer.sources.connect import socket_bindable

    for name, src in cfg.sources.items():
        if src.type == "socket":
            try:
                await socket_bindable(src)
            except OSError as exc:
                return f"sources.{name}.listen", src.listen, exc
    return None


async def refused_stages(cfg: Config) -> list[tuple[str, str]]:
    """(key, line) per s3:// stage whose bucket or credentials S3 refuses (tried
    once, before any source starts); an S3 that does not answer is retried later."""
    from streamer.aws.check import s3_stage_refusal  # the AWS SDK only for s3:// stages

    problems = []
    for name, sink in cfg.sinks.items():
        if sink.type == "stage" and sink.url.startswith("s3:"):
            refusal = await s3_stage_refusal(sink.url, sink.s3)
            if refusal is not None:
                key = f"sinks.{name}.url"
                problems.append((key, f"{key}: {sink.url}: {refusal}; nothing was read"))
    return problems


def _cannot_listen(key: str, address: str, exc: OSError, hint: str, metrics: Metrics,
                   started: float) -> int:
    return _nothing_read([f"{key}: cannot listen on {address}: "
                          f"{os.strerror(exc.errno) if exc.errno else exc}; nothing was "
                          f"read{hint}"], metrics, started)


def _nothing_read(problems: list[str], metrics: Metrics, started: float) -> int:
    """Nothing was read: one line per problem naming the setting, the usual summary,
    exit 2."""
    for problem in problems:
        log.error("%s", problem)
    summary = metrics.summary()
    summary["elapsed_s"] = round(time.monotonic() - started, 3)
    summary["exit_code"] = ExitCode.USAGE
    err_line(orjson.dumps(summary).decode())
    return ExitCode.USAGE
