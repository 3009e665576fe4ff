"""Where each piece of durable state lives under `data_dir`.

```
<data_dir>/
  lock                             held (flock) by the one process that runs on it;
                                   holds its pid
  checkpoints/<source>.json        file source checkpoints
  journal/<sink>.ndjson            stage sink load-window journals
  dead_letter/<component>.ndjson   dead letters
  streamer.duckdb                  the default DuckDB database (workers share it)
  shards/layout.json               the number of workers this data_dir runs with
  shards/claims/<source>/          file claims, shared by the workers
  shards/<i>/                      worker i's own checkpoints/, journal/,
                                   dead_letter/, api.port, summary.json and metrics.prom
```

A single process keeps its own state at the top; worker `i` of `workers = N`
keeps it under `shards/<i>/`.  Existing data dirs depend on these names: they
do not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DataDir:
    root: Path  # the config's data_dir
    worker: int | None = None  # the worker whose own state this is, when `workers` > 1

    def for_worker(self, index: int) -> DataDir:
        return DataDir(self.root, index)

    @property
    def own(self) -> Path:
        """This process's state directory."""
        return self.root if self.worker is None else self.shards / str(self.worker)

    # -- this process's own state --------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.own / "checkpoints"

    def checkpoint(self, source: str) -> Path:
        return self.checkpoints / f"{source}.json"

    @property
    def journals(self) -> Path:
        return self.own / "journal"

    def journal(self, sink: str) -> Path:
        return self.journals / f"{sink}.ndjson"

    @property
    def dead_letters(self) -> Path:
        return self.own / "dead_letter"

    @property
    def api_port(self) -> Path:
        """A worker's: written once it is up, the loopback port of its /metrics and
        /health (null when the API is off)."""
        return self.own / "api.port"

    @property
    def final_metrics(self) -> Path:
        """A worker's: its /metrics exposition as it ended (the supervisor serves
        it on, so that a finished worker's counters do not vanish)."""
        return self.own / "metrics.prom"

    @property
    def summary(self) -> Path:
        """A worker's: the summary of its run (the supervisor prints the sum)."""
        return self.own / "summary.json"

    # -- shared by every worker of the data_dir ------------------------------------
    @property
    def lock(self) -> Path:
        """Held by the process that owns the data_dir (the supervisor when
        `workers` > 1): datadir/lock.py."""
        return self.root / "lock"

    @property
    def duckdb(self) -> Path:
        """The DuckDB database a loader without `load.path` writes to."""
        return self.root / "streamer.duckdb"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def layout(self) -> Path:
        return self.shards / "layout.json"

    @property
    def written_dirs(self) -> tuple[Path, ...]:
        """Every directory of state under the data_dir (every worker's too): a file
        source never reads these back."""
        return (self.root / "checkpoints", self.root / "journal", self.root / "dead_letter",
                self.shards)

    def claims(self, source: str) -> Path:
        return self.shards / "claims" / source
