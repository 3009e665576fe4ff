"""One process per data_dir: the lock names its holder to the one refused."""

from __future__ import annotations

import os

import pytest

from streamer.datadir.layout import DataDir
from streamer.datadir.lock import DataDirBusy, DataDirLock


def test_a_second_holder_is_refused_with_the_data_dir_and_the_pid(tmp_path) -> None:
    path = DataDir(tmp_path / "data").lock
    with DataDirLock(path) as first:
        assert path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(DataDirBusy) as refused:
            DataDirLock(path).acquire()  # another open file: flock refuses it as well
        assert str(refused.value).startswith(
            f"data_dir {tmp_path / 'data'} is in use by another streamer process "
            f"(pid {os.getpid()})")
        assert path.read_text() == f"{os.getpid()}\n"  # the refused one left it alone
        assert first.fd is not None
    again = DataDirLock(path)
    again.acquire()  # released: the next one takes it (the file stays)
    again.release()


def test_a_stale_pid_from_a_dead_holder_is_overwritten(tmp_path) -> None:
    path = DataDir(tmp_path).lock
    path.write_text("999999999\nleftover\n")
    with DataDirLock(path):
        assert path.read_text() == f"{os.getpid()}\n"
