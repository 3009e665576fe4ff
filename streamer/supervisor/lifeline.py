"""A worker ends when its supervisor dies, however it dies (`kill -9` too).

Linux: `prctl(PR_SET_PDEATHSIG, SIGTERM)`, so the kernel sends the worker a
SIGTERM when its parent ends; the worker then drains and exits as on any stop.
Elsewhere a thread watches the parent pid.  The parent may have died before
the call: the worker checks it once after setting it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
SUPERVISOR_PID_ENV = "STREAMER_SUPERVISOR_PID"  # set for the workers it starts
WATCH_INTERVAL_S = 0.5


def end_with_parent(parent_pid: int) -> None:
    """Have SIGTERM sent to this process when `parent_pid`, its parent, ends.
    Call it first thing in the worker (signal handlers are not installed yet: a
    worker whose parent is already gone ends at once, having done nothing)."""
    if not _set_parent_death_signal(signal.SIGTERM):
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch",
                         daemon=True).start()
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)


def end_with_supervisor() -> None:
    """`end_with_parent` for a worker started as a fresh interpreter: the
    supervisor names itself in the environment."""
    pid = os.environ.get(SUPERVISOR_PID_ENV)
    if pid is not None and pid.isdigit():
        end_with_parent(int(pid))


def _set_parent_death_signal(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_INTERVAL_S)
    os.kill(os.getpid(), signal.SIGTERM)
