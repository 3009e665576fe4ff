"""A daemon run until its stage holds every record, then stopped: the set-up the Kafka
tests shared line for line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.csvfiles import assert_stage_equals, count_stage_rows
from tests.helpers.process import Daemon, stop
from tests.helpers.waiting import wait_until


@dataclass
class Staged:
    daemon: Daemon  # stopped; its log kept
    summary: dict[str, Any]
    took: float  # from the daemon's start to every record staged (s)


def run_until_staged(config: Path, log: Path, stage: Path, records: list[dict[str, Any]],
                     timeout: float = 60) -> Staged:
    """The daemon of `config` until `stage` holds as many rows as `records`, stopped
    (SIGTERM, its summary); then the stage holds `records`, each once."""
    daemon = Daemon(config, log)
    try:
        started = time.monotonic()
        wait_until(lambda: count_stage_rows(stage) >= len(records), timeout=timeout,
                   what="every record staged")
        took = time.monotonic() - started
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert_stage_equals(stage, records)
    return Staged(daemon, summary, took)
