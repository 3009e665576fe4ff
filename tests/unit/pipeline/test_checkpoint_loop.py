"""The checkpoint loop outlives a checkpoint it cannot write: the failure is
counted and shown in /health, and the checkpoint catches up once it can."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import orjson

from streamer.config.root import parse_config
from streamer.observability.api import health
from streamer.observability.metrics import Metrics
from streamer.pipeline.graph import Pipeline


def config(tmp: Path) -> dict[str, Any]:
    return {"data_dir": str(tmp / "data"), "checkpoint_interval_s": 0.05,
            "sources": {"logs": {"type": "file", "paths": [str(tmp / "in.ndjson")],
                                 "poll_interval_ms": 20}},
            "sinks": {"stage": {"type": "stage", "columns": ["id"], "fsync": False,
                                "max_file_age_s": 0.05, "url": f"file://{tmp}/stage/"}}}


async def until(predicate, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def saved_offset(data: Path) -> int | None:
    path = data / "checkpoints" / "logs.json"
    if not path.exists():
        return None
    return orjson.loads(path.read_bytes())["files"][0]["offset"]


def sample(metrics: Metrics, family: str, checkpoint: str) -> float:
    return next(s.value for f in metrics.registry.collect() if f.name == family
                for s in f.samples if s.labels.get("checkpoint") == checkpoint
                and not s.name.endswith("_created"))


async def test_a_failed_checkpoint_write_is_retried_until_it_succeeds(tmp_path):
    before = b"".join(orjson.dumps({"id": i}) + b"\n" for i in range(50))
    (tmp_path / "in.ndjson").write_bytes(before)
    data = tmp_path / "data"
    metrics = Metrics()
    pipeline = Pipeline(parse_config(config(tmp_path), {}), metrics)
    stop = asyncio.Event()
    runner = asyncio.create_task(pipeline.run(stop))
    try:
        await until(lambda: saved_offset(data) == len(before))
        shutil.rmtree(data / "checkpoints")
        (data / "checkpoints").write_bytes(b"")  # a file where the directory must be
        after = b"".join(orjson.dumps({"id": i}) + b"\n" for i in range(50, 80))
        with open(tmp_path / "in.ndjson", "ab") as out:
            out.write(after)
        lines = before + after
        await until(lambda: metrics.sinks["stage"].delivered == 80)
        stats = metrics.checkpoint("logs")
        await until(lambda: stats.failures >= 3)  # retried every interval, not given up
        assert not runner.done()
        status, body = health(metrics, pipeline.source_states, 60)
        assert status == 200 and body["status"] == "degraded"
        failing = body["checkpoints"]["logs"]
        assert failing["state"] == "failing" and failing["failures"] >= 3
        assert failing["last_error"].startswith(("FileExistsError", "NotADirectoryError"))
        assert failing["failing_since"] is not None
        assert body["checkpoints"]["dead_letters"]["state"] == "ok"
        assert sample(metrics, "streamer_checkpoint_failures", "logs") >= 3
        assert sample(metrics, "streamer_checkpoint_age_seconds", "logs") > 0.1

        (data / "checkpoints").unlink()  # the disk is usable again: no new data needed
        await until(lambda: saved_offset(data) == len(lines))
        await until(lambda: stats.failing_since is None)
        status, body = health(metrics, pipeline.source_states, 60)
        assert body["status"] == "ok" and body["checkpoints"]["logs"]["last_error"] is None
        assert sample(metrics, "streamer_checkpoint_age_seconds", "logs") < 1
        assert not list((data / "checkpoints").glob(".*.tmp"))
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
