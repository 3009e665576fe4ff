"""The `streamer columns` command: messages and exit codes around infer.py."""

from __future__ import annotations

import sys

from streamer.mapping.infer import columns_block, infer, sample
from streamer.runtime.exit import ExitCode


def columns_command(path: str, count: int) -> int:
    if count < 1:
        print("--sample must be at least 1", file=sys.stderr)
        return ExitCode.USAGE
    try:
        records, bad = sample(path, count)
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.USAGE
    if bad:
        print(f"{path}: {bad} line(s) of the sample are not JSON objects the sources take "
              "(the sources dead-letter them: invalid JSON, not an object, an integer "
              "outside the signed 64-bit range); skipped", file=sys.stderr)
    if not records:
        print(f"{path}: no JSON object records to infer columns from", file=sys.stderr)
        return ExitCode.USAGE
    print(columns_block(infer(records), f"inferred from {len(records)} record(s) of {path}"))
    return ExitCode.OK
