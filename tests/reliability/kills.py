"""What the exactly-once suites share: a writer that appends records to a few files
while the daemon is killed, and one run that ends in a kill -9 (aimed or random)."""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import (
    Daemon,
    Finished,
    run_cli,
    summary_identity_problems,
    wait_for_log,
    write_config,
    write_ndjson,
)

FILES = ("a.log", "b.log", "c.log")


class Writer(threading.Thread):
    """Appends the records to FILES in random slices (100-900 records every 0.1-0.25 s)
    while the daemon is at work (`writing`: set by kill_once from the daemon's first
    read to its kill), so each run finds records to work on however slowly a loaded
    host starts it (written by the clock, they were all written while early runs
    started, and later runs never reached their aimed steps); c.log is renamed to
    c.log.1 half way (a new c.log follows), once `checkpoint` names it: a file rotated
    away while streamer is stopped is found again only through its checkpoint
    (README)."""

    def __init__(self, directory: Path, records: list[dict[str, Any]], seed: int,
                 checkpoint: Path) -> None:
        super().__init__(daemon=True)
        self._dir = directory
        self._checkpoint = checkpoint
        self._records = records
        self._rng = random.Random(seed)
        self.error: BaseException | None = None
        self.writing = threading.Event()
        for name in FILES:
            (directory / name).touch()

    def run(self) -> None:
        try:
            position, rotated = 0, False
            while position < len(self._records):
                self.writing.wait()
                size = self._rng.randint(100, 900)
                name = self._rng.choice(FILES)
                write_ndjson(self._dir / name, self._records[position:position + size], "ab")
                position += size
                if (not rotated and position > len(self._records) // 2
                        and self._checkpointed(self._dir / "c.log")):
                    os.rename(self._dir / "c.log", self._dir / "c.log.1")
                    rotated = True
                time.sleep(self._rng.uniform(0.1, 0.25))
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _checkpointed(self, path: Path) -> bool:
        try:
            files = json.loads(self._checkpoint.read_bytes())["files"]
        except (OSError, ValueError):
            return False
        return os.stat(path).st_ino in {entry["ino"] for entry in files}

    def finish(self) -> None:
        self.writing.set()  # the rest, for the clean run that follows
        self.join(60)
        assert self.error is None and not self.is_alive(), self.error


STARTED = "reading .* from offset"  # a file source at work
AIMED_WAIT_S = 120  # a loaded machine starts slowly (30 s ran out at load ~20)


def kill_once(config: Path, log: Path, rng: random.Random, aimed: str | None,
              env: dict[str, str] | None = None, started: str = STARTED,
              writing: threading.Event | None = None) -> str:
    """One run that ends in a kill -9: aimed at a step (STREAMER_FAULT: the process
    kills itself there) or at a random moment; what happened.  `writing` is set while
    the daemon is at work (its first read seen in its log) and cleared after."""
    env = {**(env or {}), **({"STREAMER_FAULT": aimed} if aimed else {})}
    writing = writing or threading.Event()
    daemon = Daemon(config, log, env=env)
    try:
        if aimed:
            code = _exit_code(daemon, started, writing)
            if code is None:
                daemon.kill()
                return f"{aimed}: not reached in {AIMED_WAIT_S} s"
            assert code == -9, daemon.log[-3000:]
            return f"{aimed}: killed itself"
        wait_for_log(daemon, started)  # at work: the kill finds some
        writing.set()
        time.sleep(rng.uniform(0.2, 1.5))
        assert daemon.proc.poll() is None, daemon.log[-3000:]
        daemon.kill()
        return "random"
    finally:
        writing.clear()
        daemon.stop()


def _exit_code(daemon: Daemon, started: str, writing: threading.Event) -> int | None:
    """The daemon's exit code within AIMED_WAIT_S (None: still running); `writing` set
    once its log says it is at work."""
    deadline = time.monotonic() + AIMED_WAIT_S
    at_work = re.compile(started)
    while time.monotonic() < deadline:
        if not writing.is_set() and at_work.search(daemon.log):
            writing.set()
        code = daemon.proc.poll()
        if code is not None:
            return code
        time.sleep(0.05)
    return None


def run_kills(config: Path, directory: Path, rng: random.Random, aimed: list[str],
              random_kills: int, env: dict[str, str] | None = None,
              started: str = STARTED, writing: threading.Event | None = None) -> list[str]:
    """The kills in a seeded order, an aimed one first and then every other one (the
    writer is still writing, so the aimed steps come round; random kills fill the
    rest); at least 3 aimed ones must have hit their step."""
    aimed = list(aimed)
    rng.shuffle(aimed)
    plan: list[str | None] = []
    for step in aimed:
        plan += [step, None] if len(plan) // 2 < random_kills else [step]
    plan += [None] * (random_kills - plan.count(None))
    outcomes = [kill_once(config, directory / f"run{i}.log", rng, step, env, started,
                          writing)
                for i, step in enumerate(plan)]
    print("kills:", outcomes)
    assert sum("killed itself" in o for o in outcomes) >= min(3, len(aimed)), outcomes
    return outcomes


def kill_while_writing(tmp: Path, records: list[dict[str, Any]], seed: int,
                       config_text: Callable[[bool], str], aimed: list[str],
                       random_kills: int) -> Finished:
    """The records written to tmp/in by a Writer while streamer (`config_text(follow=
    True)`) is killed as run_kills plans; then one clean run to the end of the files
    (`config_text(False)`): its result, checked to have exited 0 with a consistent
    summary."""
    (tmp / "in").mkdir()
    config = write_config(tmp, config_text(True))
    writer = Writer(tmp / "in", records, seed, tmp / "data" / "checkpoints" / "events.json")
    writer.start()
    run_kills(config, tmp, random.Random(seed), aimed, random_kills, writing=writer.writing)
    writer.finish()
    config.write_text(config_text(False))
    done = run_cli("run", "-c", str(config))
    assert done.code == 0, done.stderr[-3000:]
    assert not summary_identity_problems(done.summary)
    return done
