"""A worker process the supervisor awaits through a pidfd: forked, or a fresh
interpreter started by `spawn_holding_signals`."""

from __future__ import annotations

import asyncio
import os
import signal

from streamer.runtime.signals import HELD


def pidfd_available() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):  # not Linux, or a kernel before 5.3
        return False
    return True


class ForkedProcess:
    """A worker forked or spawned by the supervisor, with the interface of
    `asyncio.subprocess.Process` the supervisor uses; its exit is awaited
    through a pidfd."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    async def wait(self) -> int:
        if self.returncode is None:
            loop = asyncio.get_running_loop()
            exited = loop.create_future()
            loop.add_reader(self._pidfd, lambda: exited.done() or exited.set_result(None))
            try:
                await exited
            finally:
                loop.remove_reader(self._pidfd)
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
            os.close(self._pidfd)
        return self.returncode


def spawn_holding_signals(command: list[str], env: dict[str, str], devnull_stdin: bool,
                          keep_fd: int | None) -> ForkedProcess:
    """`command` in a session of its own, started with SIGHUP, SIGINT and SIGTERM
    blocked: one forwarded before the interpreter reaches streamer's first line
    (`hold_signals`, ~50 ms) waits pending there instead of killing it (SIGHUP's
    default action).  Not asyncio's subprocess: uvloop's (libuv's) spawn empties the
    child's signal mask."""
    actions: list[tuple] = []
    if devnull_stdin:
        actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
    if keep_fd is not None:  # the data_dir lock: the worker holds it while it runs
        os.set_inheritable(keep_fd, True)
    pid = os.posix_spawn(command[0], command, env, file_actions=actions, setsid=True,
                         setsigmask=HELD,
                         # as subprocess's restore_signals: Python ignores these
                         setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    return ForkedProcess(pid)
