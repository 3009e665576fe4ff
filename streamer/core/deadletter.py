"""Dead-letter files: data_dir/dead_letter/<component>.ndjson, one JSON object a line."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson


def entry(*, component: str, reason: str, raw: bytes, path: str | None = None,
          offset: int | None = None, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "component": component,
        "reason": reason,
    }
    if path is not None:
        item["file"] = path
    if offset is not None:
        item["offset"] = offset
    item.update(extra)
    try:
        item["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        item["raw_base64"] = base64.b64encode(raw).decode("ascii")
    return item


class DeadLetters:
    """Appends entries and flushes them to the OS at once (they survive kill -9);
    `sync` makes them durable on disk before a checkpoint moves past them."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._files: dict[str, BinaryIO] = {}
        self._dirty: set[str] = set()

    def path(self, component: str) -> Path:
        return self._dir / f"{component}.ndjson"

    def write(self, component: str, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        out = self._files.get(component)
        if out is None:
            self._dir.mkdir(parents=True, exist_ok=True)
            out = self._files[component] = open(self.path(component), "ab")  # noqa: SIM115
        out.write(b"".join(orjson.dumps(e) + b"\n" for e in entries))
        out.flush()
        self._dirty.add(component)

    def sync(self) -> None:
        for component in self._dirty:
            os.fsync(self._files[component].fileno())
        self._dirty.clear()

    def close(self) -> None:
        self.sync()
        for out in self._files.values():
            out.close()
        self._files.clear()
