"""DuckDB loader: a closed window's CSV files into one table, exactly once.

The rows and a marker row naming the window are inserted in one transaction,
so a window whose marker exists is loaded, and a crash mid-load leaves
neither: the journal's `loading` state is then simply retried.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import duckdb

from streamer.loaders.base import PermanentLoadError
from streamer.loaders.config import DuckDBLoad
from streamer.sinks.stage.config import CsvOptions
from streamer.sinks.stage.journal import Window

__all__ = ["MARKER_TABLE", "DuckDBLoader", "PermanentLoadError"]

MARKER_TABLE = "_streamer_loads"
LOCK_WAIT_S = 10.0


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _connect_waiting(path: Path) -> duckdb.DuckDBPyConnection:
    """Workers (and other processes) take turns on the database file's lock: a
    short wait here, a logged retry of the whole load after that."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class DuckDBLoader:
    def __init__(self, cfg: DuckDBLoad, columns: list[str], csv: CsvOptions,
                 default_path: Path, sink: str) -> None:
        """`default_path`: the database when `cfg.path` names none (DataDir.duckdb)."""
        self._path = Path(cfg.path) if cfg.path else default_path
        self._table = cfg.table
        self._types = {c: cfg.column_types.get(c, "VARCHAR") for c in columns}
        self._csv = csv
        self._sink = sink
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        return self._path

    async def load(self, window: Window, files: list[str], progress) -> dict[str, Any]:
        async with self._lock:  # one writer per database file
            try:
                return await asyncio.to_thread(self._load, window, files)
            except duckdb.IOException:
                raise  # the file is locked by another process, disk trouble: retried
            except duckdb.Error as exc:
                raise PermanentLoadError(str(exc).splitlines()[0]) from exc

    def _connect(self) -> duckdb.DuckDBPyConnection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        con = _connect_waiting(self._path)
        columns = ", ".join(f"{_ident(c)} {t}" for c, t in self._types.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS {_ident(self._table)} ({columns})")
        con.execute(f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (window_id VARCHAR PRIMARY KEY, "
                    "sink VARCHAR, target VARCHAR, rows BIGINT, files INTEGER, "
                    "loaded_at TIMESTAMP DEFAULT current_timestamp)")
        return con

    def _load(self, window: Window, files: list[str]) -> dict[str, Any]:
        con = self._connect()
        try:
            done = con.execute(f"SELECT rows FROM {MARKER_TABLE} WHERE window_id = ?",
                               [window.id]).fetchone()
            if done is not None:
                return {"rows": done[0], "already_loaded": True}
            con.execute("BEGIN TRANSACTION")
            try:
                rows = 0
                if files:
                    rows = con.execute(
                        f"INSERT INTO {_ident(self._table)} SELECT * FROM read_csv($files, "
                        "header = true, delim = $sep, quote = $quote, escape = $quote, "
                        "nullstr = $null, auto_detect = false, columns = $columns)",
                        {"files": files, "sep": self._csv.separator, "quote": self._csv.quote,
                         "null": self._csv.null_value, "columns": self._types},
                    ).fetchone()[0]
                con.execute(f"INSERT INTO {MARKER_TABLE} (window_id, sink, target, rows, files) "
                            "VALUES (?, ?, ?, ?, ?)",
                            [window.id, self._sink, self._table, rows, len(files)])
                con.execute("COMMIT")
            except duckdb.Error:
                con.execute("ROLLBACK")
                raise
            return {"rows": rows}
        finally:
            con.close()
