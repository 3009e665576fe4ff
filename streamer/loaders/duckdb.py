"""DuckDB loader: a closed window's stage files (CSV, NDJSON or Parquet, compressed
or not) into one table, exactly once.

The rows and a marker row naming the window are inserted in one transaction,
so a window whose marker exists is loaded, and a crash mid-load leaves
neither: the journal's `loading` state is then simply retried.

Rows DuckDB cannot convert (a cell that is not of its column's type, a line
with too few or too many fields) do not fail the window: read_csv collects
them (`store_rejects`), the rest loads, and each rejected row is written to
the sink's dead letters (file, line, column, reason) before the COMMIT -- so
a crash in between dead-letters them again on the retry, never loses them.
Columns the config has and the table lacks are added to the table.

The database file is opened for each load and closed after it, so DuckDB's file
lock is held only while a window loads: between loads other processes may open
it (a reader holding it makes the next load wait, then retry).  With
`delete_staged`, a window's files are deleted once it is journaled `loaded`
(never before: until then a crash resumes the window, and its marker row makes
the load a no-op); a window whose marker row exists needs no files.

Exactly-once stages also mark each file (FILES_TABLE) in the same
transaction: a file already marked is not loaded again, whichever window
names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import duckdb

from streamer.core.deadletter import BadInput, DeadLetters, entry
from streamer.loaders.base import PermanentLoadError
from streamer.loaders.config import DuckDBLoad
from streamer.loaders.duckdb_errors import classified
from streamer.loaders.duckdb_lock import LoadLock
from streamer.loaders.staged_count import staged_records
from streamer.runtime.faults import FaultPoint
from streamer.sinks.stage.config import CsvOptions
from streamer.sinks.stage.formats import duckdb_reader
from streamer.sinks.stage.journal import Window
from streamer.sinks.stage.streams import file_marker

__all__ = ["MARKER_TABLE", "DuckDBLoader", "PermanentLoadError"]

log = logging.getLogger("streamer.loader.duckdb")

MARKER_TABLE = "_streamer_loads"
FILES_TABLE = "_streamer_files"
REJECTS_SCAN = "_streamer_rejects_scan"
REJECTS_TABLE = "_streamer_rejects"
LOCK_WAIT_S = 10.0
# column types read_csv converts cells to (a table's own type is read as it is)
READABLE_TYPE = re.compile(
    r"BOOLEAN|U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE|REAL|"
    r"DECIMAL\(\d+,\s*\d+\)|DATE|TIME|TIMESTAMP(_S|_MS|_NS| WITH TIME ZONE)?|VARCHAR|UUID")
REJECTED_ROWS = (
    f"SELECT s.file_path, e.line, e.line_byte_position, e.column_name, e.error_type, "
    f"e.error_message, e.csv_line FROM {REJECTS_TABLE} e JOIN {REJECTS_SCAN} s "
    f"USING (scan_id, file_id) ORDER BY s.file_path, e.line, e.column_idx")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _connect_waiting(path: Path, config: dict[str, str]) -> duckdb.DuckDBPyConnection:
    """Workers (and other processes: readers between loads) take turns on the
    database file's lock: a short wait here, a logged retry of the whole load after
    that."""
    started = time.monotonic()
    while True:
        try:
            con = duckdb.connect(str(path), config=config)
        except duckdb.IOException as exc:
            if "lock" not in str(exc) or time.monotonic() - started > LOCK_WAIT_S:
                raise
            time.sleep(0.05)
            continue
        waited = time.monotonic() - started
        if waited >= 1.0:
            log.info("database %s was held by another process; the load waited %.1fs for it",
                     path, waited)
        return con


def wal_of(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def forget_unwritten(path: Path, exc: duckdb.Error, before: tuple[bool, int | None]) -> None:
    """After DuckDB's fsync of the database or its .wal failed (the connection closed):
    a database this load created removed, the .wal cut back to its size before the
    load (`before`: whether the database existed, the .wal's size or None) and both
    files' pages dropped from the page cache, so that the next attempt starts from
    what the disk holds.  Linux keeps the pages whose write-back failed, marked
    clean: read back from the cache they look written, so a retried load went on
    from them and the database on the disk could be left broken ("not a valid DuckDB
    database file") under a run that exited 0."""
    if "fsync" not in str(exc).lower():
        return
    existed, wal_before = before
    wal = wal_of(path)
    log.info("database %s: fsync failed; %s", path,
             "removing the database this load created" if not existed else
             f"cutting its .wal back to {wal_before or 0} bytes")
    try:
        if not existed:
            path.unlink(missing_ok=True)
        if wal_before is None or not existed:
            wal.unlink(missing_ok=True)
        else:
            os.truncate(wal, wal_before)
    except OSError as error:
        log.warning("database %s: not restored to its state before the load after a "
                    "failed fsync: %s", path, error)
    for name in (path, wal):
        try:
            fd = os.open(name, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


def missing_files(files: list[str]) -> list[str]:
    return [f for f in files if "://" not in f and not os.path.exists(f)]


def _delete_files(files: list[str]) -> None:
    directories = set()
    for name in files:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("loaded staged file %s not deleted: %s", name, exc)
        directories.add(os.path.dirname(name))
    for directory in directories:
        with contextlib.suppress(OSError):  # not empty (a file not deleted), or gone
            os.rmdir(directory)


def rejected_rows(rejects: list[tuple]) -> int:
    """Rows rejected: a row with two bad cells is two reject entries, one row."""
    return len({(path, line, start) for path, line, start, *_ in rejects})


def check_accounting(window: Window, files: list[str], rows: int, rejects: list[tuple],
                     counted: int | None = None) -> None:
    """Every record the load's files hold is a row inserted or a row rejected
    (dead-lettered), else the load fails before its COMMIT: a reader that skips rows
    without an error (DuckDB's read_csv past its buffer, for a line longer than its
    limits from a compressed file) must never make a loss look like a load.  The
    records are the window's journaled count, or `counted` from the files where the
    journal has none for them (staged_count.py)."""
    rejected = rejected_rows(rejects)
    staged = window.records if counted is None else counted
    if rows + rejected == staged:
        return
    short = staged - rows - rejected
    raise PermanentLoadError(
        f"DuckDB read {rows} rows and rejected {rejected} from the window's "
        f"{len(files)} files, which hold {staged} records"
        + (" (counted in the files)" if counted is not None else "") + ": "
        + (f"{short} records missing (a row longer than DuckDB reads from a compressed "
           "stage file?)" if short > 0 else f"{-short} rows more than were staged")
        + "; nothing of the window was loaded")


class DuckDBLoader:
    def __init__(self, cfg: DuckDBLoad, columns: list[str], csv: CsvOptions,
                 default_path: Path, sink: str, dead_letters: DeadLetters,
                 per_file: bool = False, fmt: str = "csv", longest_row: int = 0,
                 lock: asyncio.Lock | None = None) -> None:
        """`default_path`: the database when `cfg.path` names none (DataDir.duckdb);
        `longest_row`: the longest row a compressed stage file can hold (duckdb_memory);
        `lock`: the database file's, shared by every loader of the process into it."""
        self._path = Path(cfg.path) if cfg.path else default_path
        self._table = cfg.table
        self._types = {c: cfg.column_types.get(c, "VARCHAR") for c in columns}
        self._csv = csv
        self._format = fmt
        self._sink = sink
        self._dead_letters = dead_letters
        self._delete_staged = cfg.delete_staged
        self._lock = lock or asyncio.Lock()
        self._per_file = per_file  # exactly-once stage: FILES_TABLE
        self._longest_row = longest_row
        self._config = {"memory_limit": cfg.memory_limit} if cfg.memory_limit else {}
        self._faults = FaultPoint.from_env()
        # the last load's start: whether the database existed, its .wal's size or None
        self._before: tuple[bool, int | None] = (True, None)

    @property
    def path(self) -> Path:
        return self._path

    async def load(self, window: Window, files: list[str], progress) -> dict[str, Any]:
        # one writer per database file: this process's, then every process's, until a
        # failed load's repair is done (duckdb_lock.py)
        async with self._lock, LoadLock(self._path):
            return await self._load(window, files)

    async def _load(self, window: Window, files: list[str]) -> dict[str, Any]:
        try:
            con, result, rejects = await asyncio.to_thread(self._insert, window, files)
        except duckdb.Error as exc:
            await asyncio.to_thread(forget_unwritten, self._path, exc, self._before)
            raise classified(exc, window.id) from exc
        if con is None:
            return result
        failure: duckdb.Error | None = None
        try:
            if rejects:
                self._dead_letter(window, rejects)
            self._faults.hit("load.inserted")
            await asyncio.to_thread(self._commit, con)
            self._faults.hit("load.committed")
        except duckdb.Error as exc:
            failure = exc
            raise classified(exc, window.id) from exc
        finally:
            try:
                await asyncio.to_thread(con.close)
            finally:
                if failure is not None:
                    await asyncio.to_thread(forget_unwritten, self._path, failure,
                                            self._before)
        return result

    async def discard_staged(self, files: list[str]) -> None:
        """After the window of `files` is journaled `loaded` (or found so at start):
        delete them and their window's directory, if `delete_staged`.  Files already
        gone are fine; a file that cannot be deleted is a warning, not a failure."""
        if self._delete_staged and files:
            await asyncio.to_thread(_delete_files, files)

    def _dead_letter(self, window: Window, rejects: list[tuple]) -> None:
        # offset: where the row's line starts in the staged file; DuckDB's copy of the
        # line may carry the end of the line before it (the LF of a CRLF)
        entries = [entry(self._sink, path, BadInput(line_start or 0, message or error_type,
                                                    (line_text or "").strip("\r\n").encode()),
                         window=window.id, line=line, column=column, error=error_type)
                   for path, line, line_start, column, error_type, message, line_text
                   in rejects]
        self._dead_letters.write(self._sink, entries)
        self._dead_letters.sync()  # durable before the rows' window is marked loaded
        first = rejects[0]
        log.warning("window %s of sink %s: %d rows DuckDB could not convert went to the dead "
                    "letters (first: %s line %s: %s)", window.id, self._sink, len(rejects),
                    first[0], first[1], first[5])

    def _connect(self) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
        """The database, its tables ready, and the types to read the files with."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        con = _connect_waiting(self._path, self._config)
        try:
            existing = self._prepare_tables(con)
        except BaseException:
            con.close()
            raise
        return con, self._read_types(existing)

    def _read_types(self, existing: dict[str, str]) -> dict[str, str]:
        """CSV is read with the types of the table's columns where they are simple
        ones (a table made before, or by hand): a cell the table cannot take is then
        a rejected row, dead-lettered, not a failed INSERT of the whole window."""
        if self._format != "csv":
            return self._types
        return {column: existing[column] if READABLE_TYPE.fullmatch(existing.get(column, ""))
                else kind for column, kind in self._types.items()}

    def _prepare_tables(self, con: duckdb.DuckDBPyConnection) -> dict[str, str]:
        """The table's columns and types as they were (none: created now)."""
        table = _ident(self._table)
        existing = dict(con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name = ?", [self._table]).fetchall())
        if not existing:
            columns = ", ".join(f"{_ident(c)} {t}" for c, t in self._types.items())
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
        for column, kind in self._types.items():
            if column not in existing and existing:
                log.info("table %s: adding column %s %s (new in the config)", self._table,
                         column, kind)
                con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "
                            f"{_ident(column)} {kind}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (window_id VARCHAR PRIMARY KEY, "
                    "sink VARCHAR, target VARCHAR, rows BIGINT, files INTEGER, "
                    "loaded_at TIMESTAMP DEFAULT current_timestamp)")
        con.execute(f"ALTER TABLE {MARKER_TABLE} ADD COLUMN IF NOT EXISTS "
                    "rows_rejected BIGINT DEFAULT 0")
        if self._per_file:
            con.execute(f"CREATE TABLE IF NOT EXISTS {FILES_TABLE} (file VARCHAR PRIMARY KEY, "
                        "window_id VARCHAR, sink VARCHAR, "
                        "loaded_at TIMESTAMP DEFAULT current_timestamp)")
        return existing

    def _unmarked(self, con: duckdb.DuckDBPyConnection, window: Window,
                  files: list[str]) -> tuple[list[str], list[str]]:
        """The files not loaded yet (by any window) and their markers."""
        markers = [file_marker(window.id, f) for f in files]
        marked = {name for (name,) in con.execute(
            f"SELECT file FROM {FILES_TABLE} WHERE list_contains($markers, file)",
            {"markers": markers}).fetchall()}
        if marked:
            log.warning("window %s of sink %s: %d of its files were loaded before (by "
                        "another window); not loaded again", window.id, self._sink,
                        len(marked))
        kept = [(f, m) for f, m in zip(files, markers, strict=True) if m not in marked]
        return [f for f, _ in kept], [m for _, m in kept]

    def _insert(self, window: Window, files: list[str]) -> tuple[
            duckdb.DuckDBPyConnection | None, dict[str, Any], list[tuple]]:
        """The window's rows and marker in an open transaction (None: loaded before)."""
        existed, wal = self._path.exists(), wal_of(self._path)
        self._before = (existed, None)
        con, read_types = self._connect()
        self._before = (existed, wal.stat().st_size if wal.exists() else None)
        try:
            done = con.execute(f"SELECT rows, rows_rejected FROM {MARKER_TABLE} "
                               "WHERE window_id = ?", [window.id]).fetchone()
            if done is not None:  # its files are no longer needed (deleted, maybe)
                con.close()
                return None, {"rows": done[0], "rows_rejected": done[1] or 0,
                              "already_loaded": True}, []
            missing = missing_files(files)
            if missing:
                raise PermanentLoadError(
                    f"staged file {missing[0]} of window {window.id} is missing"
                    + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                    + ": deleted or moved from outside? Restore it and run "
                    "`streamer loads retry`")
            con.execute("BEGIN TRANSACTION")
            rows, rejects = 0, []
            named = len(files)
            if self._per_file:
                files, markers = self._unmarked(con, window, files)
                if markers:
                    con.execute(f"INSERT INTO {FILES_TABLE} (file, window_id, sink) "
                                "SELECT unnest($markers), $window, $sink",
                                {"markers": markers, "window": window.id, "sink": self._sink})
            if files:
                reader, params = duckdb_reader(
                    self._format, read_types, self._csv,
                    f"store_rejects = true, rejects_scan = '{REJECTS_SCAN}', "
                    f"rejects_table = '{REJECTS_TABLE}'",
                    compressed=any(f.endswith((".gz", ".zst")) for f in files),
                    longest_row=self._longest_row)
                rows = con.execute(
                    f"INSERT INTO {_ident(self._table)} BY NAME SELECT * FROM {reader}",
                    {"files": files, **params}).fetchone()[0]
                if self._format == "csv":
                    rejects = con.execute(REJECTED_ROWS).fetchall()
                # the journal's count is the window's: for part of its files, or none
                # known (closed from its files after a restart), count what is read
                counted = (None if len(files) == named and window.records else
                           staged_records(files, self._format, self._csv.quote, con))
                check_accounting(window, files, rows, rejects, counted)
            rejected = rejected_rows(rejects)
            con.execute(f"INSERT INTO {MARKER_TABLE} (window_id, sink, target, rows, files, "
                        "rows_rejected) VALUES (?, ?, ?, ?, ?, ?)",
                        [window.id, self._sink, self._table, rows, len(files), rejected])
            return con, {"rows": rows, "rows_rejected": rejected}, rejects
        except BaseException:
            con.close()  # an open transaction ends with the connection (rolled back)
            raise

    @staticmethod
    def _commit(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("COMMIT")
