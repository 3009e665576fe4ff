"""Small durable state files in data_dir: written whole, atomically."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import orjson


class StateFileUnreadable(Exception):
    """A state file in data_dir (a checkpoint, a stage journal) that is not what
    streamer wrote: the run must not go on from guessed state."""

    def __init__(self, path: Path, kind: str, why: str, remedy: str) -> None:
        super().__init__(f"{path}: not a {kind} streamer wrote ({why}); it is left as it "
                         f"is: restore it, or {remedy}")


def write_atomic(path: Path, data: bytes, *, fsync: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # a full disk: the old file stays whole, the partial copy goes
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path, default: Any) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return default


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, orjson.dumps(value, option=orjson.OPT_INDENT_2))
