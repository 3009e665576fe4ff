"""`workers = N`: one pipeline shard per process.

A shard owns a share of the input -- the files it claimed (sources/file/claims.py:
by device and inode, so a rotated file stays with the shard that read it; balanced
by count), socket connections by the kernel (SO_REUSEPORT), Kafka partitions by
the consumer group, stdin in shard 0 -- and has its own batchers, encoders, sinks,
checkpoints, journals and dead letters under `<data_dir>/shards/<i>/`
(streamer/datadir/layout.py).  Stage files and windows carry the shard in their
instance id, so shards never write the same name.  The embedded DuckDB database
stays shared: loads take turns on its file lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamer.config.root import Config
from streamer.datadir.files import read_json, write_json
from streamer.datadir.layout import DataDir


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


def shard_config(cfg: Config, shard: Shard) -> Config:
    """The config one worker runs: its own instance id and loopback API port (the
    supervisor serves the merged one).  Its data_dir stays the run's: the
    pipeline keeps the worker's own state under it (DataDir.for_worker)."""
    # the supervisor merges the workers' /metrics and /health when it serves them
    api = cfg.api.model_copy(update={"listen": "127.0.0.1:0" if cfg.api.listen else ""})
    return cfg.model_copy(update={"instance_id": f"{cfg.instance_id}-w{shard.index}", "api": api})


def layout_problem(cfg: Config) -> str | None:
    """A data_dir keeps the number of workers it was first run with: checkpoints,
    journals and file claims are per worker, and nothing moves them."""
    data_dir = DataDir(cfg.data_path)
    recorded = read_json(data_dir.layout, {}).get("workers")
    single = any(any(d.glob("*")) for d in (data_dir.checkpoints, data_dir.journals)
                 if d.is_dir())
    if recorded is None and single and cfg.workers > 1:
        recorded = 1
    if recorded is None or recorded == cfg.workers:
        return None
    return (f"workers: {cfg.data_dir} holds the checkpoints of a run with workers = "
            f"{recorded}; run with workers = {recorded}, or let that run finish and use a "
            f"new data_dir")


def record_layout(cfg: Config) -> None:
    if cfg.workers > 1:
        write_json(DataDir(cfg.data_path).layout, {"workers": cfg.workers})
