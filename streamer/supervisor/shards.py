"""`workers = N`: one pipeline shard per process.

A shard owns a share of the input -- the files it claimed (sources/file_claims.py:
by device and inode, so a rotated file stays with the shard that read it; balanced
by count), socket connections by the kernel (SO_REUSEPORT), Kafka partitions by
the consumer group, stdin in shard 0 -- and has its own batchers, encoders, sinks,
checkpoints, journals and dead letters under `<data_dir>/shards/<i>/`.  Stage
files and windows carry the shard in their instance id, so shards never write
the same name.  The embedded DuckDB database stays shared: loads take turns on
its file lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamer.config.root import Config
from streamer.datadir.files import read_json, write_json
from streamer.loaders.config import DuckDBLoad
from streamer.sinks.stage.config import StageSinkConfig


@dataclass(frozen=True, slots=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """"I/N" as given to a worker process."""
        index, _, count = text.partition("/")
        shard = cls(int(index), int(count))
        if not 0 <= shard.index < shard.count:
            raise ValueError(f"shard {text!r}: want I/N with 0 <= I < N")
        return shard

    @property
    def reads_stdin(self) -> bool:
        return self.index == 0


def shard_dir(data_dir: Path, index: int) -> Path:
    return data_dir / "shards" / str(index)


# in a worker's own data_dir: written once it is up, the loopback port of its
# /metrics and /health (null when the API is off), and the summary of its run
# (the supervisor prints the sum)
API_PORT_FILE = "api.port"
SUMMARY_FILE = "summary.json"


def claims_dir(worker_data_dir: Path, source: str) -> Path:
    """Shared by the workers: <data_dir>/shards/claims/<source>/."""
    return worker_data_dir.parent / "claims" / source


def shard_config(cfg: Config, shard: Shard) -> Config:
    """The config one worker runs: its own state directory, instance id and
    loopback API port (the supervisor serves the merged one); the DuckDB
    database of the whole run."""
    own_dir = shard_dir(cfg.data_path, shard.index)
    sinks = {}
    for name, sink in cfg.sinks.items():
        if (isinstance(sink, StageSinkConfig) and isinstance(sink.load, DuckDBLoad)
                and not sink.load.path):
            shared = str(cfg.data_path / "streamer.duckdb")
            sink = sink.model_copy(update={"load": sink.load.model_copy(update={"path": shared})})
        sinks[name] = sink
    # the supervisor merges the workers' /metrics and /health when it serves them
    api = cfg.api.model_copy(update={"listen": "127.0.0.1:0" if cfg.api.listen else ""})
    return cfg.model_copy(update={
        "data_dir": str(own_dir),
        "instance_id": f"{cfg.instance_id}-w{shard.index}",
        "api": api,
        "sinks": sinks,
    })


def _layout_path(data_dir: Path) -> Path:
    return data_dir / "shards" / "layout.json"


def layout_problem(cfg: Config) -> str | None:
    """A data_dir keeps the number of workers it was first run with: checkpoints,
    journals and file claims are per worker, and nothing moves them."""
    recorded = read_json(_layout_path(cfg.data_path), {}).get("workers")
    single = any(any((cfg.data_path / d).glob("*")) for d in ("checkpoints", "journal")
                 if (cfg.data_path / d).is_dir())
    if recorded is None and single and cfg.workers > 1:
        recorded = 1
    if recorded is None or recorded == cfg.workers:
        return None
    return (f"workers: {cfg.data_dir} holds the checkpoints of a run with workers = "
            f"{recorded}; run with workers = {recorded}, or let that run finish and use a "
            f"new data_dir")


def record_layout(cfg: Config) -> None:
    if cfg.workers > 1:
        write_json(_layout_path(cfg.data_path), {"workers": cfg.workers})
