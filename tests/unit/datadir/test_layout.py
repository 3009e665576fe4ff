"""Every path streamer keeps under data_dir: existing data dirs depend on them."""

from __future__ import annotations

from pathlib import Path

from streamer.datadir.layout import DataDir


def paths(data_dir: DataDir) -> dict[str, str]:
    return {
        "own": data_dir.own,
        "checkpoints": data_dir.checkpoints,
        "checkpoint": data_dir.checkpoint("files"),
        "journals": data_dir.journals,
        "journal": data_dir.journal("stage"),
        "dead_letters": data_dir.dead_letters,
        "api_port": data_dir.api_port,
        "summary": data_dir.summary,
        "duckdb": data_dir.duckdb,
        "shards": data_dir.shards,
        "layout": data_dir.layout,
        "lock": data_dir.lock,
        "claims": data_dir.claims("files"),
    }


def test_a_single_process_keeps_its_state_at_the_top() -> None:
    assert {k: str(v) for k, v in paths(DataDir(Path("/srv/data"))).items()} == {
        "own": "/srv/data",
        "checkpoints": "/srv/data/checkpoints",
        "checkpoint": "/srv/data/checkpoints/files.json",
        "journals": "/srv/data/journal",
        "journal": "/srv/data/journal/stage.ndjson",
        "dead_letters": "/srv/data/dead_letter",
        "api_port": "/srv/data/api.port",
        "summary": "/srv/data/summary.json",
        "duckdb": "/srv/data/streamer.duckdb",
        "shards": "/srv/data/shards",
        "layout": "/srv/data/shards/layout.json",
        "lock": "/srv/data/lock",
        "claims": "/srv/data/shards/claims/files",
    }


def test_a_worker_keeps_its_own_state_under_shards_and_shares_the_rest() -> None:
    worker = DataDir(Path("/srv/data")).for_worker(1)
    assert worker == DataDir(Path("/srv/data"), 1)
    assert {k: str(v) for k, v in paths(worker).items()} == {
        "own": "/srv/data/shards/1",
        "checkpoints": "/srv/data/shards/1/checkpoints",
        "checkpoint": "/srv/data/shards/1/checkpoints/files.json",
        "journals": "/srv/data/shards/1/journal",
        "journal": "/srv/data/shards/1/journal/stage.ndjson",
        "dead_letters": "/srv/data/shards/1/dead_letter",
        "api_port": "/srv/data/shards/1/api.port",
        "summary": "/srv/data/shards/1/summary.json",
        "duckdb": "/srv/data/streamer.duckdb",
        "shards": "/srv/data/shards",
        "layout": "/srv/data/shards/layout.json",
        "lock": "/srv/data/lock",
        "claims": "/srv/data/shards/claims/files",
    }
    assert worker.for_worker(0).own == Path("/srv/data/shards/0")
