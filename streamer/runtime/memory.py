"""Gives the kernel back what only start-up needed.

Loading DuckDB leaves about 35 MiB of its 68 MiB library resident (it registers
every built-in function and extension), of which about 7 MiB is used again while
encoding; pydantic-core's and libcrypto's pages are not touched again at all.
Those pages are clean copies of files, so asking the kernel to reclaim them
(MADV_PAGEOUT, Linux >= 5.4) loses nothing: a page needed later is read back
on its first touch.  Heap memory freed by start-up goes back with malloc_trim.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("streamer.memory")

MADV_PAGEOUT = 21


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
    try:
        # the symbols the interpreter itself links (libc's among them), without
        # ctypes.util.find_library, which runs `ldconfig -p` in a subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        before = _resident_kib()
        for start, length in _read_only_file_mappings():
            libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), MADV_PAGEOUT)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(ctypes.c_size_t(0))
        log.debug("start-up memory released: resident %d -> %d KiB", before, _resident_kib())
    except (OSError, AttributeError) as exc:  # no /proc, no madvise
        log.debug("start-up memory not released: %s", exc)
