"""A worker's config, and the data_dir's record of how many workers it runs with."""

from __future__ import annotations

import pytest

from streamer.config.root import parse_config
from streamer.datadir.files import write_json
from streamer.datadir.layout import DataDir
from streamer.supervisor.shards import Shard, layout_problem, record_layout, shard_config


def config(data_dir, workers: int = 1, listen: str = "127.0.0.1:9000"):
    return parse_config({
        "data_dir": str(data_dir), "instance_id": "host", "workers": workers,
        "api": {"listen": listen},
        "sources": {"logs": {"type": "file", "paths": ["/var/log/*.ndjson"]}},
        "sinks": {"stage": {"type": "stage", "url": "file:///tmp/stage/", "columns": ["a"],
                            "load": {"type": "duckdb", "table": "events"}}},
    }, {})


def test_a_worker_runs_the_same_data_dir_with_its_own_name_and_a_loopback_api(tmp_path) -> None:
    cfg = config(tmp_path, workers=2)
    worker = shard_config(cfg, Shard(1, 2))
    assert (worker.data_dir, worker.instance_id, worker.api.listen) == (
        str(tmp_path), "host-w1", "127.0.0.1:0")
    assert worker.sinks == cfg.sinks  # the default database is the run's: DataDir.duckdb
    assert shard_config(config(tmp_path, listen=""), Shard(0, 2)).api.listen == ""


def test_a_data_dir_keeps_the_number_of_workers_it_was_run_with(tmp_path) -> None:
    assert layout_problem(config(tmp_path, workers=3)) is None
    record_layout(config(tmp_path, workers=3))
    assert (tmp_path / "shards" / "layout.json").read_bytes() == b'{\n  "workers": 3\n}'
    assert layout_problem(config(tmp_path, workers=3)) is None
    assert layout_problem(config(tmp_path, workers=2)) == (
        f"workers: {tmp_path} holds the checkpoints of a run with workers = 3; run with "
        "workers = 3, or let that run finish and use a new data_dir")


def test_a_single_process_data_dir_with_state_cannot_grow_workers(tmp_path) -> None:
    write_json(DataDir(tmp_path).checkpoint("logs"), {"files": []})
    assert layout_problem(config(tmp_path, workers=1)) is None
    assert layout_problem(config(tmp_path, workers=2)).startswith(
        f"workers: {tmp_path} holds the checkpoints of a run with workers = 1;")


@pytest.mark.parametrize("bad", ["4/4", "-1/2", "x/2", "1"])
def test_shard_parse_refuses(bad):
    with pytest.raises(ValueError):
        Shard.parse(bad)


def test_shard_parse():
    assert Shard.parse("1/4") == Shard(1, 4)
