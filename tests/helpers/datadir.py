"""What a run leaves in its data_dir: dead letters, the stage journal, checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def read_dead_letters(data_dir: Path, component: str) -> list[dict[str, Any]]:
    """The dead letters of a source or sink, in the order written; [] if none."""
    path = data_dir / "dead_letter" / f"{component}.ndjson"
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def journal(data_dir: Path, sink: str = "st") -> dict[str, dict[str, Any]]:
    """Window id -> merged state from the journal file (as a restart would see it)."""
    path = data_dir / "journal" / f"{sink}.ndjson"
    windows: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            windows.setdefault(event["window"], {}).update(event)
    return windows


def checkpoint_offset(data_dir: Path, source: str = "f") -> int:
    """The furthest offset a file source's checkpoint holds; 0 without one."""
    path = data_dir / "checkpoints" / f"{source}.json"
    if not path.exists():
        return 0
    try:
        files = orjson.loads(path.read_bytes())["files"]
    except (orjson.JSONDecodeError, KeyError):
        return 0
    return max((f["offset"] for f in files), default=0)
