"""A worker ends when its parent does: by the kernel's parent-death signal on
Linux, by watching the parent pid elsewhere, and at once if the parent is
already gone when it asks."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys

import psutil
import pytest

from tests.helpers import REPO

CHILD = """
import os, sys, time
import streamer.supervisor.lifeline as lifeline
if sys.argv[1] == "watch":
    lifeline._set_parent_death_signal = lambda signum: False  # what other systems do
lifeline.end_with_parent(int(sys.argv[2]))
print("set", flush=True)
time.sleep(30)
"""

# starts CHILD watching this middle process, prints its pid and exits at once
MIDDLE = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], str(os.getpid())],
                         stdout=subprocess.PIPE)
assert child.stdout.readline() == b"set\\n"
print(child.pid, flush=True)
"""


@pytest.mark.parametrize("mechanism", ["prctl", "watch"])
def test_a_child_gets_sigterm_when_its_parent_dies(mechanism: str) -> None:
    middle = subprocess.run([sys.executable, "-c", MIDDLE, CHILD, mechanism], cwd=REPO,
                            capture_output=True, timeout=30, check=True)
    child = psutil.Process(int(middle.stdout))
    try:
        child.wait(10)  # it would sleep 30 s; not its child: psutil cannot tell the code
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def test_a_child_whose_parent_is_already_gone_ends_at_once() -> None:
    # pid 1 is not its parent: as if the parent had died before the call
    child = subprocess.run([sys.executable, "-c", CHILD, "prctl", "1"], cwd=REPO,
                           capture_output=True, timeout=30)
    assert child.returncode == -signal.SIGTERM and child.stdout == b""
