"""A file by identity: (device, inode) and a fingerprint of its first bytes.

A file that is not at its path any more (rotated: renamed, or renamed while
the process was stopped, or while its descriptor was closed to stay under
`max_open_files`) is looked for among the files of the same directory
(`app.log.1`, `app.log-20261204`): a rename keeps the inode, so a file found
with the same device, inode and first bytes is the same file.
"""

from __future__ import annotations

import hashlib
import os
import stat

from streamer.sources.file.checkpoint import FileKey

FINGERPRINT_BYTES = 256


def fingerprint(fd: int, length: int = FINGERPRINT_BYTES) -> tuple[str, int]:
    head = os.pread(fd, length, 0)
    return hashlib.blake2b(head, digest_size=16).hexdigest(), len(head)


def _open_if(path: str, key: FileKey) -> int:
    """An fd of `path` when it is the file `key` (a regular file), else -1.
    Raises the OSError when `path` is that file but does not open (no read
    permission, an I/O error): the file is there, not gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        try:
            st = os.stat(path)
        except OSError:
            return -1
        if (st.st_dev, st.st_ino) == key and stat.S_ISREG(st.st_mode):
            raise
        return -1
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) == key and stat.S_ISREG(st.st_mode):
        return fd
    os.close(fd)
    return -1


def find_in_directory(directory: str, key: FileKey) -> tuple[int, str] | None:
    """An fd and the path of the file `key` among the files of `directory`."""
    try:
        entries = list(os.scandir(directory or "."))
    except OSError:
        return None
    for entry in entries:
        if entry.inode() != key[1]:
            continue
        fd = _open_if(entry.path, key)
        if fd >= 0:
            return fd, entry.path
    return None


def open_by_identity(path: str, key: FileKey) -> tuple[int, str] | None:
    """An fd and the current path of the file `key`, last seen at `path`: at
    that path, or renamed within its directory; None when it is nowhere.
    Raises OSError when it is found but does not open."""
    fd = _open_if(path, key)
    if fd >= 0:
        return fd, path
    return find_in_directory(os.path.dirname(path), key)


def find_copy(directory: str, key: FileKey, fp: str, fp_len: int,
              min_size: int) -> tuple[int, str] | None:
    """An fd and the path of the newest other file of `directory` that starts
    with the same bytes as the file `key` and holds at least `min_size` bytes:
    the copy that copytruncate made before it truncated the file."""
    best: tuple[float, int, str] | None = None
    try:
        entries = list(os.scandir(directory or "."))
    except OSError:
        return None
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if ((st.st_dev, st.st_ino) == key or not stat.S_ISREG(st.st_mode)
                or st.st_size < min_size or (best is not None and st.st_ctime <= best[0])):
            continue
        try:
            fd = _open_if(entry.path, (st.st_dev, st.st_ino))
        except OSError:  # not readable: not a copy to read
            continue
        if fd < 0:
            continue
        if fingerprint(fd, fp_len) != (fp, fp_len):
            os.close(fd)
            continue
        if best is not None:
            os.close(best[1])
        best = (st.st_ctime, fd, entry.path)
    return None if best is None else (best[1], best[2])
