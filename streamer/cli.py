"""Command line: arguments -> config -> run or check; maps errors to exit codes."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from streamer.observability.logs import report, setup_logging
from streamer.runtime.exit import ExitCode, exit_now
from streamer.runtime.signals import release_signals
from streamer.runtime.stdio import OutputFailed, ensure_stdout, err_line, out, output_failure_line

if TYPE_CHECKING:
    from streamer.config.root import Config
    from streamer.supervisor.shards import Shard

# The config's models (pydantic: about 0.35 s of CPU) are imported once a command needs
# a config, asyncio (0.09 s) once a command runs a loop: `--version`, `--help`, usage
# errors and `columns` do without both, `check` without asyncio.

_DESCRIPTION = """\
Streaming NDJSON ingester.

sources: file (tailed or read once, checkpointed; rotation followed), stdin,
  socket (TCP or TLS, newline or length-prefixed frames, optional acks),
  kafka (consumer group, offsets committed after delivery)
sinks:   td (Treasure Data postback or batched ingest, per-record table routing),
  stage (csv, ndjson or parquet files, gzip/zstd/snappy compressed or not, local or
  s3://, in load windows; optionally exactly once)
loaders: a stage's closed windows are loaded into duckdb (local), timestream (Amazon
  Timestream batch load tasks) or dataexchange (AWS Data Exchange import jobs)
"""

_EPILOG = """\
examples:
  streamer example                       # the commented configs shipped, one per job
  streamer example tail-to-duckdb > my.toml
  streamer check -c my.toml
  streamer check -c my.toml --connect    # also try every source and destination once
  streamer run -c my.toml
  streamer loads retry -c my.toml        # failed load windows load again at the next start

README.md is the front page (also this package's long description). Installed with
this package, in {data}/: docs/ (the configuration reference: every key; guarantees;
operations: service, metrics, health; internals; performance), config/examples/ (one
commented config per job), config/streamer.service and config/grafana-dashboard.json.
Exit codes: 0 ok, 1 runtime failure (check --connect: a check failed), 2 bad config or
arguments.
"""


_COMMAND_EPILOGS = {
    "run": "exit codes: 0 ok (a finite run done, or stopped by SIGTERM/SIGINT); 1 a runtime "
           "failure, a forced stop, or a finite run with a failed load window; 2 a bad "
           "config or argument, a data_dir in use, an API address taken. Commented configs "
           "for every job: `streamer example`.",
    "check": "exit codes: 0 ok; 1 (--connect) a source or destination failed its check; 2 a "
             "bad config (nothing is tried). Secrets are never printed.",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("streamer")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """`--version`: the installed version, looked up only when asked (a lookup reads
    the installed packages' metadata: milliseconds every run otherwise)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show program's version "
                         "number and exit", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        out(f"streamer {_version()}")  # stdout, as argparse's own action
        parser.exit()


def _json_requested(argv: Sequence[str]) -> bool:
    return "--log-format=json" in argv or any(
        a == "--log-format" and b == "json" for a, b in itertools.pairwise(argv))


class _Parser(argparse.ArgumentParser):
    json_errors = False  # set on the subclass _parser makes

    def error(self, message: str):
        if not self.json_errors:
            super().error(message)
        setup_logging("json", "error")
        report(f"{self.prog}: error: {message}", logger="streamer.cli",
               usage=self.format_usage().strip())
        self.exit(ExitCode.USAGE)


def _parser(json_errors: bool = False) -> argparse.ArgumentParser:
    # subparsers are made of the parser's own class: they report errors the same way
    parser_class = type("Parser", (_Parser,), {"json_errors": json_errors})
    data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_data")
    parser = parser_class(prog="streamer", description=_DESCRIPTION,
                          epilog=_EPILOG.format(data=data),
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in (
            ("run", "run the pipeline until SIGTERM/SIGINT, or to the end of a finite "
                    "input (stdin, files with follow = false); SIGHUP reloads the config"),
            ("check", "validate the config and print the resolved topology; with "
                      "--connect also try each source and destination once")):
        cmd = sub.add_parser(name, help=help_text, description=help_text,
                             epilog=_COMMAND_EPILOGS[name])
        cmd.add_argument("-c", "--config", required=True, help="TOML config file")
        cmd.add_argument("--log-format", choices=("text", "json"), default="text")
        cmd.add_argument("--log-level", default="info",
                         choices=("debug", "info", "warning", "error"))
        if name == "run":
            cmd.add_argument("--no-progress", action="store_true",
                             help="no status line on the terminal (finite runs)")
            # set by the supervisor when `workers` > 1: this process is worker I of N
            cmd.add_argument("--shard", type=_parse_shard, help=argparse.SUPPRESS)
        else:
            cmd.add_argument("--connect", action="store_true", help=(
                "one line per source and destination, `ok` or why not: TD reachable "
                "and the key accepted, S3 stage writable (a probe object put and "
                "deleted), Timestream table and Data Exchange data set exist, Kafka "
                "topics exist, socket address bindable, file paths readable; "
                "exit 1 when any fails"))
    loads = sub.add_parser("loads", help="load windows that failed",
                           description="load windows that failed").add_subparsers(
        dest="action", required=True)
    retry = loads.add_parser("retry", help="mark failed load windows (all, or the WINDOW ids "
                             "given) to be loaded again at streamer's next start")
    retry.add_argument("-c", "--config", required=True, help="TOML config file")
    retry.add_argument("windows", nargs="*", metavar="WINDOW")
    retry.set_defaults(log_format="text", log_level="warning")
    columns = sub.add_parser("columns", help="print a columns = [...] block for the records "
                             "of an NDJSON file (paths of nested fields, inferred types)")
    columns.add_argument("file", metavar="FILE")
    columns.add_argument("--sample", type=int, default=1000, metavar="N",
                         help="records read from the start of FILE (default 1000)")
    columns.set_defaults(log_format="text", log_level="warning")
    example = sub.add_parser("example", help="list the commented example configs shipped "
                             "with streamer, or print the one NAME (`> my.toml`)")
    example.add_argument("name", nargs="?", metavar="NAME")
    example.set_defaults(log_format="text", log_level="warning")
    return parser


def _parse_shard(text: str) -> Shard:
    from streamer.supervisor.shards import Shard

    return Shard.parse(text)


_parse_shard.__name__ = "parse"  # argparse names it in an error: "invalid parse value"


def _run_async(coro) -> int:
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser(_json_requested(sys.argv[1:] if argv is None else argv)).parse_args(argv)
    if args.command != "run":  # only a run stops cleanly on a signal held at start
        release_signals()
    if args.command == "columns":
        from streamer.mapping.command import columns_command

        ensure_stdout()  # print() to a closed stdout writes nothing, silently
        try:
            return columns_command(args.file, args.sample)
        except OSError as exc:  # its file's errors are its own: this is the block's print
            raise OutputFailed(exc) from exc
    if args.command == "example":
        from streamer.runtime.examples import example_output

        text, code = example_output(args.name)
        if code == ExitCode.OK:
            out(text)
        else:
            err_line(text)
        return code
    from streamer.config.problems import problem_fields
    from streamer.config.root import ConfigError, data_dir_problem, load_config
    from streamer.config.secrets import secret_values

    console = setup_logging(args.log_format, args.log_level)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            report(problem, logger="streamer.config", **problem_fields(problem, args.config))
        return ExitCode.USAGE
    console.add_secrets(secret_values(cfg))  # from now on they are masked in logs
    problem = data_dir_problem(cfg, create=args.command == "run")
    if problem is not None:
        report(problem, logger="streamer.config", key="data_dir")
        return ExitCode.USAGE
    if args.command == "run" and args.shard is None:
        from streamer.config.root import stage_dir_problems

        stage_problems = stage_dir_problems(cfg)
        for problem in stage_problems:
            report(problem, logger="streamer.config", key=problem.partition(":")[0])
        if stage_problems:
            return ExitCode.USAGE
    if args.command == "check":
        from streamer.config.check import check_report  # `run` has no use for it
        from streamer.config.paths import relative_path_lines
        from streamer.config.secrets import permission_warnings

        out(check_report(cfg, args.config))
        for warning in [*relative_path_lines(cfg), *permission_warnings(args.config, cfg)]:
            report(warning, level="warning", logger="streamer.config")
        if args.connect:
            from streamer.config.connect import connect_report

            lines, all_ok = _run_async(connect_report(cfg))
            out("\n".join(lines))
            return ExitCode.OK if all_ok else ExitCode.FAILURE
        return ExitCode.OK
    if args.command == "loads":
        from streamer.loaders.retry_command import retry_windows

        ensure_stdout()  # before the journals change: what changed is said there
        lines, code = retry_windows(cfg, args.windows)
        out("\n".join(lines))
        return code
    return _run(args, cfg)


def _run_worker(args: argparse.Namespace, cfg: Config, shard: Shard) -> int:
    """One worker of a supervisor (`workers` > 1)."""
    from streamer.app import run
    from streamer.supervisor.shards import shard_config

    return _run_async(run(shard_config(cfg, shard), progress=False, config_path=args.config,
                          shard=shard))


def _run(args: argparse.Namespace, cfg: Config) -> int:
    from streamer.config.paths import relative_path_lines
    from streamer.datadir.layout import DataDir
    from streamer.datadir.lock import DataDirBusy, DataDirLock

    if args.shard is not None:  # a worker the supervisor started as a fresh interpreter
        from streamer.supervisor.lifeline import end_with_supervisor

        end_with_supervisor()  # no orphan; the supervisor holds the data_dir lock
        return _run_worker(args, cfg, args.shard)
    lock = DataDirLock(DataDir(cfg.data_path).lock)
    try:  # before anything under data_dir is touched
        lock.acquire()
    except (DataDirBusy, OSError) as exc:
        report(str(exc) if isinstance(exc, DataDirBusy) else
               f"data_dir {cfg.data_path} cannot be used: {exc}", key="data_dir")
        return ExitCode.USAGE
    for line in relative_path_lines(cfg):  # under systemd the working directory is /
        report(line, level="warning", logger="streamer.config", key=line.partition(" ")[0])
    try:
        return _run_owner(args, cfg, lock.fd)
    finally:
        lock.release()  # forked workers still running keep their copy of it


def _run_owner(args: argparse.Namespace, cfg: Config, lock_fd: int | None) -> int:
    """The run of the process that holds the data_dir lock."""
    from streamer.supervisor.shards import layout_problem, record_layout

    problem = layout_problem(cfg)
    if problem is not None:
        report(problem, logger="streamer.config", key="workers")
        return ExitCode.USAGE
    record_layout(cfg)
    if cfg.workers > 1 and _refused_stage(cfg):
        return ExitCode.USAGE
    if cfg.workers > 1:
        from streamer.supervisor.fork import Supervisor, can_fork_workers, fork_workers

        command = [sys.executable, "-m", "streamer", "run", "-c", args.config, "--no-progress",
                   "--log-format", args.log_format, "--log-level", args.log_level]
        api_sock = None
        if cfg.api.listen:  # bound before any worker starts: a taken port stops nothing
            from streamer.observability.api import bind_listen

            try:
                api_sock = bind_listen(cfg.api.listen)
            except OSError as exc:
                report(f"api.listen: cannot listen on {cfg.api.listen}: "
                       f"{os.strerror(exc.errno) if exc.errno else exc}; no worker was "
                       'started (choose a free port, or listen = "" to turn the API off)',
                       key="api.listen")
                return ExitCode.USAGE
        forked = fork_workers(cfg, lambda shard: _run_worker(args, cfg, shard),
                              [api_sock] if api_sock else []) if can_fork_workers() else {}
        return _run_async(Supervisor(cfg, command, forked, lock_fd, api_sock).run())
    from streamer.app import run

    # the status line is a terminal's redrawn line, not a log line: none with json logs
    progress = not args.no_progress and args.log_format == "text"
    return _run_async(run(cfg, progress=progress, config_path=args.config))


def _refused_stage(cfg: Config) -> bool:
    """A one-shot run's s3:// stage that S3 refuses, checked before any worker starts
    (one process: streamer.app.run checks it); one line each."""
    from streamer.app import refused_stages
    from streamer.observability.progress import finite_run

    s3_stages = any(sink.type == "stage" and sink.url.startswith("s3:")
                    for sink in cfg.sinks.values())
    # an event loop only when needed: the workers are forked from this process
    refusals = _run_async(refused_stages(cfg)) if s3_stages and finite_run(cfg) else []
    for key, problem in refusals:
        report(problem, logger="streamer.config", key=key)
    return bool(refusals)


def entry() -> None:
    """The `streamer` command: by the time `main` returns every file the run wrote
    is closed and synced, so the interpreter's teardown (3% of a 1M-record run)
    is skipped."""
    try:
        code = main()
    except OutputFailed as exc:
        if (line := output_failure_line(exc)) is not None:
            try:  # a JSON object with --log-format json, as every stderr line
                report(line, logger="streamer.cli")
            except (OSError, ValueError, AttributeError):  # stderr gone too
                err_line(line)
        code = ExitCode.FAILURE
    exit_now(code)


if __name__ == "__main__":
    entry()
