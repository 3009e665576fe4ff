"""One load at a time per DuckDB database, across processes: `<database>.load-lock`.

DuckDB's own file lock is held only while a connection is open.  A load that has to
repair the files after a failed fsync (duckdb.py `forget_unwritten`: a database it
created removed, the .wal cut back) does so after its connection closed; without a
lock of its own, another worker sharing the database could connect and commit in
between, and the repair would remove that commit.  Every load takes this flock
before it connects and keeps it until its repair is done.  Waited for in the event
loop (a try every WAIT_S), so a stop cancels the wait; readers outside streamer
never take it (they take turns on DuckDB's lock as before).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path
from types import TracebackType

log = logging.getLogger("streamer.loader.duckdb")

WAIT_S = 0.02


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".load-lock")


class LoadLock:
    """`async with LoadLock(database)`: the database's load lock held.  A lock file
    that cannot be made (the directory not writable) is no lock: DuckDB's own error
    for that directory then fails the load as before."""

    def __init__(self, database: Path) -> None:
        self._path = lock_path(database)
        self._fd: int | None = None

    async def __aenter__(self) -> LoadLock:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            log.debug("load lock %s not taken: %s", self._path, exc)
            return self
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not told:
                        log.info("%s: another load (another worker's, or another sink's "
                                 "into the same database) holds it; this one waits",
                                 self._path)
                        told = True
                    await asyncio.sleep(WAIT_S)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
