"""A local stage file's write-back started while it grows, so that the fsync that
completes it finds little left to write.

The kernel writes dirty pages back after about 30 s, or when they reach a share of
memory: a file that fills in less time is written to disk only by the fsync at its
completion, which the sink waits for (0.25-0.65 s for 350 MB here).  Every
WRITEBACK_BYTES written, `sync_file_range(SYNC_FILE_RANGE_WRITE)` starts writing that
range in a thread (the call can block while the device's queue is full) and returns
without waiting for it.  It does not take the file's write-back errors: the fsync at
completion still sees them, so durability rests on that fsync as before.  Without the
call (not Linux, no glibc symbol) nothing starts early.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2
WRITEBACK_BYTES = 16 << 20


def sync_file_range() -> Callable[[int, int, int], None] | None:
    """`start(fd, offset, nbytes)`: the write-back of that range started, errors
    ignored; None where the system has no such call."""
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int

    def start(fd: int, offset: int, nbytes: int) -> None:
        call(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE)  # releases the GIL (ctypes)

    return start
