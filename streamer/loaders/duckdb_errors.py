"""Which DuckDB errors a later attempt can get past, and which it cannot.

A full disk, an I/O error or another process's lock on the database file pass
once space is freed or the lock released: the load is retried with backoff.
Every other error (a type the table cannot hold, a bad statement, a database
file or directory streamer may not write) fails the window.  The error that
counts is the first one: a failed COMMIT ends the transaction, and the ROLLBACK
after it only adds "no transaction is active".
"""

from __future__ import annotations

import duckdb

from streamer.loaders.base import PermanentLoadError

# lower-case fragments of the OS and lock errors DuckDB puts into its messages
TRANSIENT_MARKERS = (
    "no space left", "disk quota", "input/output error", "could not set lock",
    "conflicting lock", "resource temporarily unavailable", "too many open files",
    "could not write file", "could not fsync", "could not read from file",
    "database has been invalidated", "out of memory",
)
# an input file that vanished between the check and the read, or a database file
# DuckDB cannot open as one (another kind of file, a directory, a version it cannot
# read): no retry brings it back
MISSING_INPUT_MARKERS = ("no files found that match", "no such file or directory",
                         "not a valid duckdb database file",
                         "database file with version number", "is a directory")
# the database file, its directory (a new database, the .wal beside it) or a staged
# file streamer may not write or read: an operator has to change a mode or a mount
NOT_PERMITTED_MARKERS = ("permission denied", "read-only file system",
                         "operation not permitted")
TRANSIENT_TYPES = (duckdb.IOException, duckdb.FatalException, duckdb.OutOfMemoryException)


def is_transient(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    if any(marker in text for marker in MISSING_INPUT_MARKERS + NOT_PERMITTED_MARKERS):
        return False
    return isinstance(exc, TRANSIENT_TYPES) or any(m in text for m in TRANSIENT_MARKERS)


def classified(exc: duckdb.Error, window_id: str) -> Exception:
    """The exception to raise for `exc`: itself when a retry may pass, else a
    PermanentLoadError naming the window and DuckDB's first line."""
    if is_transient(exc):
        return exc
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return PermanentLoadError(f"DuckDB refused window {window_id}: {first_line}")
