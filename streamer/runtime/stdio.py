"""The standard streams when nobody may be reading them: `streamer check | head -1`,
`> /dev/full`, a supervisor that started streamer with stdout or stderr closed.

stdout holds a command's result (check, columns, loads, --version): when it cannot be
written the command failed (OutputFailed: one line, exit 1).  A run's summary on
stderr reports a run whose exit code is the run's: it is written if it can be."""

from __future__ import annotations

import contextlib
import errno
import sys


class OutputFailed(Exception):
    """stdout did not take the command's output; the cause is the OSError."""


def out(text: str) -> None:
    """`text` and a newline on stdout, flushed; OutputFailed when it cannot be written."""
    stream = sys.stdout
    try:
        if stream is None:  # the process was started with its stdout closed
            raise OSError(errno.EBADF, "stdout is closed")
        stream.write(text + "\n")
        stream.flush()
    except (OSError, ValueError) as exc:
        raise OutputFailed(exc) from exc


def ensure_stdout() -> None:
    """OutputFailed now, before a command acts, when stdout is closed."""
    if sys.stdout is None:
        raise OutputFailed(OSError(errno.EBADF, "stdout is closed"))


def output_failure_line(exc: OutputFailed) -> str | None:
    """What to say on stderr; None for a reader that went away (`| head`): not news."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc.args[0]
    if isinstance(cause, BrokenPipeError):
        return None
    return f"streamer: cannot write to stdout: {cause}"


def err_line(text: str) -> None:
    """`text` and a newline on stderr if it takes them (closed, or its reader gone: the
    line is lost, nothing else)."""
    stream = sys.stderr
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):
        stream.write(text + "\n")
        stream.flush()


def flush_both() -> None:
    """Flush stdout and stderr as far as they take it (before a fork or an exit)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # started with it closed
            with contextlib.suppress(OSError, ValueError):  # a reader that went away
                stream.flush()
