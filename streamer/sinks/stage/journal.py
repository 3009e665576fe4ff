"""The load-window journal: data_dir/journal/<sink>.ndjson.

An append-only log of window state changes, fsynced before the action it
announces (a window is journaled `open` before its first file is moved into
it, a load's id before the load job is created), so after a crash every
window is found again and resumed, never loaded twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streamer.datadir.files import write_atomic

FINAL_STATES = frozenset({"loaded", "failed", "staged"})
KEEP_FINAL = 200


@dataclass
class Window:
    id: str
    state: str = "open"
    files: list[str] = field(default_factory=list)
    records: int = 0
    bytes: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class Journal:
    def __init__(self, path: Path) -> None:
        self._path = path
        self.windows: dict[str, Window] = {}
        self._fh = None

    def open(self) -> list[Window]:
        """Replay the journal, compact it, and return the unfinished windows."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if self._path.exists():
            for line in self._path.read_bytes().splitlines():
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn last line from a crash mid-append
                self._apply(event)
        self._compact()
        self._fh = open(self._path, "ab")  # noqa: SIM115
        return [w for w in self.windows.values() if not w.final]

    def record(self, window: Window, **changes: Any) -> None:
        event = {"window": window.id, **changes}
        self._apply(event, window)
        self._fh.write(orjson.dumps(event) + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _apply(self, event: dict[str, Any], window: Window | None = None) -> None:
        window = window or self.windows.get(event["window"]) or Window(event["window"])
        self.windows[window.id] = window
        for key, value in event.items():
            if key == "window":
                continue
            if hasattr(window, key) and key != "info":
                setattr(window, key, value)
            else:
                window.info[key] = value

    def _compact(self) -> None:
        final = [w for w in self.windows.values() if w.final]
        for window in final[:-KEEP_FINAL]:
            del self.windows[window.id]
        lines = []
        for w in self.windows.values():
            event = {"window": w.id, "state": w.state, "files": w.files, "records": w.records,
                     "bytes": w.bytes, **w.info}
            lines.append(orjson.dumps(event) + b"\n")
        write_atomic(self._path, b"".join(lines))
