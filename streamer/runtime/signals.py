"""SIGINT, SIGTERM and SIGHUP held from the process's first line until the event
loop's handlers take over: a signal sent while modules import or the config loads
then stops the run as one sent later does (a drain and the summary), instead of a
KeyboardInterrupt traceback or a death without a summary; a SIGHUP then is one
reload once the pipeline runs (the file may have been edited after it was read).

The holder is the installed handler itself (found again with signal.getsignal),
so nothing is kept at module level.

A command that is not `run` ignores a held SIGHUP, as it did before it was held.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from types import FrameType

STOPS = (signal.SIGINT, signal.SIGTERM)
HELD = (*STOPS, signal.SIGHUP)
# a signal that came once the event loop ran reaches the loop's own handler too
# (its wakeup fd), as soon as that handler is installed: a held one waits this long
SETTLE_S = 0.1


class SignalHolder:
    def __init__(self) -> None:
        self.received: list[int] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)


def hold_signals() -> None:
    holder = SignalHolder()
    for signum in HELD:
        signal.signal(signum, holder)
    # a restarted worker starts with them blocked (supervisor/spawn.py): pending ones come now
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)


def holder() -> SignalHolder | None:
    """The holder while it is installed (take it before the loop's handlers replace it)."""
    handler = signal.getsignal(signal.SIGTERM)
    return handler if isinstance(handler, SignalHolder) else None


def take_held(found: SignalHolder | None) -> list[int]:
    """The signals `found` held (each once); taken after the loop's handlers are
    installed, so that no signal falls between the two."""
    if found is None:
        return []
    taken, found.received[:] = list(found.received), []
    return taken


def act_on_held(found: SignalHolder | None, act: Callable[[int], None],
                stopping: Callable[[], bool], hangup: Callable[[], None],
                hung_up: Callable[[], bool]) -> None:
    """After the loop's handlers are installed (SIGHUP's too): the SIGINT and SIGTERM
    `found` held are one stop (`act`), unless the loop's handlers stopped the run
    meanwhile (the same signal, seen by both); the SIGHUPs it held are one `hangup`,
    unless the loop's SIGHUP handler ran meanwhile (the same signal, or a later one
    whose reload reads the file later still)."""
    import asyncio  # not at the top: signals are held before asyncio's 0.1 s of imports

    taken = take_held(found)
    loop = asyncio.get_running_loop()
    held = [signum for signum in taken if signum in STOPS]
    if held:
        loop.call_later(SETTLE_S, lambda: None if stopping() else act(held[0]))
    if signal.SIGHUP in taken:
        loop.call_later(SETTLE_S, lambda: None if hung_up() else hangup())


def release_signals() -> None:
    """Back to Python's defaults (a command that is not `run`): a held signal is
    sent again, so it acts as it would have."""
    found = holder()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    for signum in found.received if found is not None else []:
        if signum in STOPS:
            os.kill(os.getpid(), signum)
