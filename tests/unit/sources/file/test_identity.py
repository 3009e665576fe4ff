"""Finding a file by identity after a rename, and the copy a copytruncate made."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from streamer.sources.file.identity import (
    find_copy,
    find_in_directory,
    fingerprint,
    open_by_identity,
)


def key_of(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino)


def read_all(fd: int) -> bytes:
    try:
        return os.pread(fd, 1 << 20, 0)
    finally:
        os.close(fd)


def test_a_file_at_its_path_is_opened_there(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"a\n")
    fd, found = open_by_identity(str(path), key_of(path))
    assert (found, read_all(fd)) == (str(path), b"a\n")


def test_a_renamed_file_is_found_in_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"old\n")
    key = key_of(path)
    path.rename(tmp_path / "app.log-20261204")
    path.write_bytes(b"new\n")  # a new file at the old path is another file
    fd, found = open_by_identity(str(path), key)
    assert (found, read_all(fd)) == (str(tmp_path / "app.log-20261204"), b"old\n")


def test_a_file_deleted_or_moved_elsewhere_is_nowhere(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"old\n")
    key = key_of(path)
    (tmp_path / "archive").mkdir()
    path.rename(tmp_path / "archive" / "app.log.1")
    assert open_by_identity(str(path), key) is None
    assert find_in_directory(str(tmp_path / "missing"), key) is None


def test_the_copy_of_a_truncated_file_is_the_newest_with_its_first_bytes(tmp_path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"first line\nsecond line\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        fp, fp_len = fingerprint(fd)
    finally:
        os.close(fd)
    (tmp_path / "other.log").write_bytes(b"another file, longer than the first one\n")
    (tmp_path / "short.log").write_bytes(b"first line\n")  # same start, too short
    shutil.copyfile(path, tmp_path / "app.log.1")
    os.truncate(path, 0)
    fd, found = find_copy(str(tmp_path), key_of(path), fp, fp_len, min_size=23)
    assert (found, read_all(fd)) == (str(tmp_path / "app.log.1"), b"first line\nsecond line\n")
    assert find_copy(str(tmp_path), key_of(path), fp, fp_len, min_size=24) is None
