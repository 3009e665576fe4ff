"""Atomic state files: a write that fails leaves the old file whole and no temp file."""

from __future__ import annotations

import errno
import os

import pytest

from streamer.datadir import files
from streamer.datadir.files import write_atomic


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp_copy(tmp_path,
                                                                      monkeypatch) -> None:
    path = tmp_path / "state" / "x.json"
    write_atomic(path, b"old")

    def full_disk(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json"]
