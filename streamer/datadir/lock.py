"""One process owns a data_dir: an exclusive `flock` on `DataDir.lock`.

Two processes on one data_dir would take each other's stage files for those of
a dead run, and write the same checkpoints and journals.  The lock is taken
before anything under data_dir is touched and held until the process ends;
the kernel releases it when the process dies, however it dies.  The holder
writes its pid into the file, so the one refused can name it.  The file itself
stays (removing a lock file races with the next process opening it).

With `workers` > 1 the supervisor holds it: forked workers inherit the open
file (and so keep the data_dir owned while they drain after the supervisor
died); workers started as fresh interpreters get it passed (`fd`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class DataDirBusy(Exception):
    """Another live process holds the data_dir."""


class DataDirLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `DataDirBusy` (naming the holder) at once;
        OSError when data_dir cannot be created or the file opened."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not O_TRUNC: the holder's pid
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirBusy(
                f"data_dir {self.path.parent} is in use by another streamer process "
                f"(pid {holder if holder is not None else 'unknown'}); one process per "
                "data_dir: stop it first or give this one its own data_dir") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing the last copy releases the flock
            self.fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None
