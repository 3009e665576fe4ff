"""Exit codes, and leaving without the interpreter's teardown."""

from __future__ import annotations

import subprocess
import sys

from streamer.runtime.exit import ExitCode
from tests.helpers import REPO


def test_exit_codes_are_the_documented_ones() -> None:
    assert {code.name: int(code) for code in ExitCode} == {"OK": 0, "FAILURE": 1, "USAGE": 2}


def test_exit_now_flushes_what_was_written_and_exits_with_the_code() -> None:
    script = ("import logging, sys\n"
              "from streamer.runtime.exit import ExitCode, exit_now\n"
              "logging.basicConfig(stream=sys.stderr, format='%(message)s')\n"
              "sys.stdout.write('summary on stdout')\n"
              "logging.getLogger('t').warning('a log line')\n"
              "exit_now(ExitCode.USAGE)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=REPO,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (2, b"summary on stdout",
                                                           b"a log line\n")
