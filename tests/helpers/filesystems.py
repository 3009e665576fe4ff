"""A full disk on demand: a small tmpfs (the suites run as root, as CI does) and a
file that takes every free byte of it."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path`; a mount that fails fails the test."""
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """A file taking every free byte of `directory`'s filesystem."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    chunk = b"\0" * 65536
    try:
        while True:
            os.write(fd, chunk)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


@contextlib.contextmanager
def thin_filesystem(path: Path, backing_size: str = "24m",
                    image_size: str = "64m") -> Iterator[tuple[Path, Path]]:
    """An ext4 filesystem (no journal) on a loop device whose backing file lives on a
    tmpfs smaller than it: writes land in the page cache, and their write-back fails
    (ENOSPC, then EIO) once the backing tmpfs is full -- what a thin-provisioned
    volume, a network block device or a dying disk does.  Yields (the mount point,
    the backing tmpfs: `fill` it to make write-back fail, remove the filler to let it
    pass again)."""
    backing, mount = path / "backing", path / "disk"
    with small_filesystem(backing, backing_size):
        image = backing / "disk.img"
        subprocess.run(["truncate", "-s", image_size, str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(image)],
                       check=True, capture_output=True)
        loop = subprocess.run(["losetup", "-f", "--show", str(image)], check=True,
                              capture_output=True, text=True).stdout.strip()
        try:
            mount.mkdir()
            subprocess.run(["mount", "-o", "errors=continue", loop, str(mount)], check=True,
                           capture_output=True)
            try:
                yield mount, backing
            finally:
                subprocess.run(["umount", "-l", str(mount)], check=False)
        finally:
            subprocess.run(["losetup", "-d", loop], check=False)


def remount(mount: Path) -> None:
    """Unmount and mount again: what is read afterwards is what the device holds, not
    the page cache (a reboot's view)."""
    source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mount)], check=True,
                            capture_output=True, text=True).stdout.strip()
    subprocess.run(["umount", str(mount)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "errors=continue", source, str(mount)], check=True,
                   capture_output=True)
