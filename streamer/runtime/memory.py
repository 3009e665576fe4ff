"""Gives the kernel back what only start-up needed.

Loading DuckDB leaves about 35 MiB of its 68 MiB library resident (it registers
every built-in function and extension), of which about 7 MiB is used again while
encoding; pydantic-core's and libcrypto's pages are not touched again at all.
Those pages are clean copies of files, so asking the kernel to reclaim them
(MADV_PAGEOUT, Linux >= 5.4) loses nothing: a page needed later is read back
on its first touch.  Heap memory freed by start-up goes back with malloc_trim.

A worker of several shares those pages with the other processes, and the kernel
pages out only what one process maps.  There each process unmaps the pages
instead (MADV_DONTNEED): they stay in the page cache, counted in no process's
memory, and a page used again is mapped back on its first touch (a minor
fault).  Only mappings whose every page is the file's own are unmapped: a
private copy (a relocated pointer in RELRO) would be lost.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import os

log = logging.getLogger("streamer.memory")

MADV_DONTNEED = 4
MADV_PAGEOUT = 21
# the top byte of a /proc/self/pagemap entry: bit 63 present, 62 swapped, 61 a
# page of the file (else a private copy, as relocations write into RELRO pages)
_COPIED = bytes(1 if byte & 0xC0 and not byte & 0x20 else 0 for byte in range(256))


def _resident_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _read_only_file_mappings() -> list[tuple[int, int]]:
    """(start, length) of every mapping of a file that this process cannot write:
    code and constants; never data, heap or stacks."""
    spans = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or not fields[5].startswith("/") or "w" in fields[1]:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            spans.append((start, end - start))
    return spans


def release_startup_memory() -> None:
    """Best effort; a kernel or libc without these calls changes nothing."""
    _advise_file_mappings(MADV_PAGEOUT, "start-up memory released", only_file_pages=False)


def unmap_shared_library_pages() -> None:
    """In a process of several that map the same libraries (the supervisor and its
    workers): unmap the pages of read-only file mappings that hold only the file's
    own pages, and give freed heap back.  Best effort, like release_startup_memory."""
    _advise_file_mappings(MADV_DONTNEED, "library pages unmapped", only_file_pages=True)


def _advise_file_mappings(advice: int, done: str, only_file_pages: bool) -> None:
    """madvise `advice` over the read-only file mappings (with `only_file_pages`,
    those without a private copy among their pages), then malloc_trim."""
    try:
        # the symbols the interpreter itself links (libc's among them), without
        # ctypes.util.find_library, which runs `ldconfig -p` in a subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        before = _resident_kib()
        with contextlib.ExitStack() as stack:
            pagemap = (stack.enter_context(open("/proc/self/pagemap", "rb", buffering=0))
                       .fileno() if only_file_pages else -1)
            for start, length in _read_only_file_mappings():
                if pagemap < 0 or _only_file_pages(pagemap, start, length):
                    libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), advice)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(ctypes.c_size_t(0))
        log.debug("%s: resident %d -> %d KiB", done, before, _resident_kib())
    except (OSError, AttributeError) as exc:  # no /proc, no madvise
        log.debug("%s: not done: %s", done, exc)


def _only_file_pages(pagemap: int, start: int, length: int) -> bool:
    """Whether no page of the mapping is a private copy (present or swapped, not
    the file's): the top byte of each 8-byte pagemap entry, checked in C."""
    first, count = start // mmap.PAGESIZE, length // mmap.PAGESIZE
    entries = os.pread(pagemap, count * 8, first * 8)
    return len(entries) == count * 8 and 1 not in entries[7::8].translate(_COPIED)
