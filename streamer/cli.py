"""Command line: arguments -> config -> run or check; maps errors to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from streamer.config import ConfigError, load_config
from streamer.logs import setup_logging
from streamer.topology import describe

EXIT_USAGE = 2


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
    return parser


def _run_async(coro) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_format, args.log_level)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check":
        print(describe(cfg, args.config))
        return 0
    from streamer.app import run

    return _run_async(run(cfg))


if __name__ == "__main__":
    sys.exit(main())
