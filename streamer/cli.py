"""Command line: arguments -> config -> run or check; maps errors to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from streamer.config.root import Config, ConfigError, data_dir_problem, load_config
from streamer.config.secrets import permission_warnings, secret_values
from streamer.datadir.layout import DataDir
from streamer.datadir.lock import DataDirBusy, DataDirLock
from streamer.observability.logs import setup_logging
from streamer.runtime.exit import ExitCode, exit_now
from streamer.supervisor.shards import Shard, layout_problem, record_layout, shard_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamer", description=(
        "Streaming NDJSON ingester: files, stdin -> batches -> CSV stage -> DuckDB"))
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("run", "run the pipeline until SIGTERM/SIGINT or end of input"),
                            ("check", "validate the config and print the resolved topology")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("-c", "--config", required=True, help="TOML config file")
        cmd.add_argument("--log-format", choices=("text", "json"), default="text")
        cmd.add_argument("--log-level", default="info",
                         choices=("debug", "info", "warning", "error"))
        if name == "run":
            cmd.add_argument("--no-progress", action="store_true",
                             help="no status line on the terminal (finite runs)")
            # set by the supervisor when `workers` > 1: this process is worker I of N
            cmd.add_argument("--shard", type=Shard.parse, help=argparse.SUPPRESS)
    loads = sub.add_parser("loads", help="load windows that failed").add_subparsers(
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
    return parser


def _run_async(coro) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "columns":
        from streamer.mapping.command import columns_command

        return columns_command(args.file, args.sample)
    console = setup_logging(args.log_format, args.log_level)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return ExitCode.USAGE
    console.add_secrets(secret_values(cfg))  # from now on they are masked in logs
    problem = data_dir_problem(cfg, create=args.command == "run")
    if problem is not None:
        print(problem, file=sys.stderr)
        return ExitCode.USAGE
    if args.command == "check":
        from streamer.config.check import check_report  # `run` has no use for it

        print(check_report(cfg, args.config))
        for warning in permission_warnings(args.config, cfg):
            print(warning, file=sys.stderr)
        return ExitCode.OK
    if args.command == "loads":
        from streamer.loaders.retry_command import retry_windows

        lines, code = retry_windows(cfg, args.windows)
        print("\n".join(lines))
        return code
    return _run(args, cfg)


def _run_worker(args: argparse.Namespace, cfg: Config, shard: Shard) -> int:
    """One worker of a supervisor (`workers` > 1)."""
    from streamer.app import run

    return _run_async(run(shard_config(cfg, shard), progress=False, config_path=args.config,
                          shard=shard))


def _run(args: argparse.Namespace, cfg: Config) -> int:
    if args.shard is not None:  # a worker the supervisor started as a fresh interpreter
        from streamer.supervisor.lifeline import end_with_supervisor

        end_with_supervisor()  # no orphan; the supervisor holds the data_dir lock
        return _run_worker(args, cfg, args.shard)
    lock = DataDirLock(DataDir(cfg.data_path).lock)
    try:  # before anything under data_dir is touched
        lock.acquire()
    except (DataDirBusy, OSError) as exc:
        print(exc if isinstance(exc, DataDirBusy) else
              f"data_dir {cfg.data_path} cannot be used: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        return _run_owner(args, cfg, lock.fd)
    finally:
        lock.release()  # forked workers still running keep their copy of it


def _run_owner(args: argparse.Namespace, cfg: Config, lock_fd: int | None) -> int:
    """The run of the process that holds the data_dir lock."""
    problem = layout_problem(cfg)
    if problem is not None:
        print(problem, file=sys.stderr)
        return ExitCode.USAGE
    record_layout(cfg)
    if cfg.workers > 1:
        from streamer.supervisor.fork import Supervisor, can_fork_workers, fork_workers

        command = [sys.executable, "-m", "streamer", "run", "-c", args.config, "--no-progress",
                   "--log-format", args.log_format, "--log-level", args.log_level]
        forked = fork_workers(cfg, lambda shard: _run_worker(args, cfg, shard)) \
            if can_fork_workers() else {}
        return _run_async(Supervisor(cfg, command, forked, lock_fd).run())
    from streamer.app import run

    return _run_async(run(cfg, progress=not args.no_progress, config_path=args.config))


def entry() -> None:
    """The `streamer` command: by the time `main` returns every file the run wrote
    is closed and synced, so the interpreter's teardown (3% of a 1M-record run)
    is skipped."""
    exit_now(main())


if __name__ == "__main__":
    entry()
