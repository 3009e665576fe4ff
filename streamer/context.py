"""What every source and sink of one pipeline shard shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamer.deadletter import DeadLetters
from streamer.metrics import Metrics


@dataclass(frozen=True)
class Context:
    metrics: Metrics
    dead_letters: DeadLetters
    data_dir: Path
    # names this shard's files and objects so shards and instances never collide
    instance_id: str
