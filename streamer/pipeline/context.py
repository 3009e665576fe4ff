"""What every source and sink of one pipeline shard shares."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from streamer.core.deadletter import DeadLetters
from streamer.core.fences import Fences
from streamer.datadir.layout import DataDir
from streamer.observability.metrics import Metrics
from streamer.supervisor.shards import Shard


class DatabaseLocks:
    """One lock per DuckDB database file: the loads of a process's stage sinks into one
    file take turns (DuckDB refuses a schema change beside another transaction's, as
    two sinks' first loads into a new database make)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def of(self, path: Path) -> asyncio.Lock:
        return self._locks.setdefault(os.path.realpath(path), asyncio.Lock())


@dataclass(frozen=True)
class Context:
    metrics: Metrics
    dead_letters: DeadLetters
    # every path of this shard's state: checkpoints, journals, claims, the database
    data_dir: DataDir
    # names this shard's files and objects so shards and instances never collide
    instance_id: str
    # this process's share of the input when `workers` > 1
    shard: Shard = field(default_factory=Shard)
    # exactly-once stage sinks' fences per replayable stream (filled before sources start)
    fences: Fences = field(default_factory=Fences)
    # local stage directories: a file source never reads what streamer writes there
    stage_dirs: tuple[Path, ...] = ()
    # a one-shot run (finite input): a destination that refuses for good ends it
    finite: bool = False
    # the longest record the sources feeding the sink being built take (graph.py)
    longest_record: int = 0
    # DuckDB loads into one database file take turns
    database_locks: DatabaseLocks = field(default_factory=DatabaseLocks)
