"""A running pipeline (in this process) reloaded: components take their metrics
with them, and what they read before still reaches the stage."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from streamer.config.root import parse_config
from streamer.observability.metrics import Metrics
from streamer.pipeline.graph import Pipeline
from streamer.pipeline.plan import plan_reload
from tests.helpers import read_stage_rows


def config(tmp: Path, **sources: dict[str, Any]) -> dict[str, Any]:
    stage = {"type": "stage", "columns": ["id", "k"], "fsync": False}
    return {"data_dir": str(tmp / "data"), "checkpoint_interval_s": 60,
            "sources": {"logs": {"type": "file", "paths": [str(tmp / "none-*.ndjson")]},
                        **sources},
            "sinks": {"stage": {**stage, "url": f"file://{tmp}/stage/"},
                      "copy": {**stage, "url": f"file://{tmp}/copy/", "inputs": ["logs"]}}}


def socket(max_connections: int = 8) -> dict[str, Any]:
    return {"type": "socket", "listen": "127.0.0.1:0", "max_connections": max_connections}


def families(metrics: Metrics) -> Counter[str]:
    """How many times each metric family is collected from the registry."""
    return Counter(family.name for family in metrics.registry.collect())


def samples(metrics: Metrics, family: str) -> list[dict[str, str]]:
    return [sample.labels for f in metrics.registry.collect() if f.name == family
            for sample in f.samples]


async def until(predicate, what: str) -> None:
    async with asyncio.timeout(10):
        while not predicate():
            await asyncio.sleep(0.01)


async def send(pipeline: Pipeline, ids: range) -> None:
    await until(lambda: getattr(pipeline.sources.get("net"), "address", None), "listening")
    host, port = pipeline.sources["net"].address  # type: ignore[attr-defined]
    _, writer = await asyncio.open_connection(host, port)
    writer.write(b"".join(orjson.dumps({"id": i, "k": f"k{i}"}) + b"\n" for i in ids))
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    stats = pipeline.metrics.source("net")
    await until(lambda: stats.records == ids.stop, f"{ids.stop} records")


async def reload(pipeline: Pipeline, new: dict[str, Any]) -> None:
    await pipeline.apply(plan_reload(pipeline.config, parse_config(new, {})))


async def test_a_reload_leaves_no_metrics_of_what_it_replaced_or_removed(tmp_path):
    metrics = Metrics()
    pipeline = Pipeline(parse_config(config(tmp_path, net=socket()), {}), metrics)
    stop = asyncio.Event()
    runner = asyncio.create_task(pipeline.run(stop))
    await pipeline.started.wait()
    before = families(metrics)
    assert before["streamer_socket_open_connections"] == 1
    assert {s["sink"] for s in samples(metrics, "streamer_sink_buffer_bytes")} == {"stage", "copy"}
    await send(pipeline, range(0, 100))

    await reload(pipeline, config(tmp_path, net=socket(max_connections=4)))  # rebuilt
    assert families(metrics) == before  # the new version's collector, and only it
    assert sorted((s["source"], s["outcome"])
                  for s in samples(metrics, "streamer_socket_connections")) == [
        ("net", o) for o in ("accepted", "evicted", "no_record", "refused")]
    await send(pipeline, range(100, 200))

    removed = config(tmp_path)
    del removed["sinks"]["copy"]
    await reload(pipeline, removed)
    after = families(metrics)
    assert not [name for name in after if name.startswith("streamer_socket_")], after
    assert after == Counter({name: count for name, count in before.items()
                             if not name.startswith("streamer_socket_")})
    assert {s["sink"] for s in samples(metrics, "streamer_sink_buffer_bytes")} == {"stage"}

    stop.set()
    await asyncio.wait_for(runner, 30)
    header, rows = read_stage_rows(tmp_path / "stage")
    assert header == ["id", "k"]
    assert sorted(rows, key=lambda row: int(row[0])) == [[str(i), f"k{i}"] for i in range(200)]
    assert metrics.sinks["stage"].delivered == 200 and metrics.sinks["stage"].in_flight == 0


def test_buffers_are_built_with_what_their_sinks_take(tmp_path):
    cfg = config(tmp_path)
    cfg["sinks"]["copy"]["native_encoding"] = False
    cfg["sinks"]["td"] = {"type": "td", "database": "events", "table": "access", "write_key": "1/x",
                          "endpoint": "http://127.0.0.1:9", "inputs": ["logs"]}
    pipeline = Pipeline(parse_config(cfg, {}), Metrics())
    # the native CSV encoder (Linux: memfd) reads a read's block as it is; TD sends
    # line by line
    native = hasattr(os, "memfd_create")
    assert {name: b.whole_blocks for name, b in pipeline.buffers.items()} == {
        "stage": native, "copy": False, "td": False}
