"""A SIGHUP that comes before the pipeline runs (held since the first line, or
while it starts) is one reload once it runs: the file edited meanwhile is applied."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from streamer.config.root import load_config
from streamer.observability.metrics import Metrics
from streamer.pipeline.graph import Pipeline
from streamer.pipeline.reloader import Reloader
from tests.helpers import read_stage_rows


def write(tmp: Path, sources: list[str]) -> Path:
    text = f'data_dir = "{tmp}/data"\ncheckpoint_interval_s = 60\n'
    for name in sources:
        text += (f'[sources.{name}]\ntype = "file"\npaths = ["{tmp}/{name}.ndjson"]\n'
                 "poll_interval_ms = 20\n")
    text += (f'[sinks.stage]\ntype = "stage"\nurl = "file://{tmp}/stage/"\n'
             'columns = ["id", "k"]\nfsync = false\nmax_file_age_s = 0.1\n')
    path = tmp / "streamer.toml"
    path.write_text(text)
    return path


async def test_a_sighup_before_the_pipeline_runs_is_served_once_it_does(tmp_path, caplog):
    rows = {name: [{"id": i, "k": f"{name}-{i}"} for i in range(start, start + 5)]
            for name, start in (("first", 0), ("late", 100))}
    for name, records in rows.items():
        (tmp_path / f"{name}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in records))
    path = write(tmp_path, ["first"])
    pipeline = Pipeline(load_config(path), Metrics())
    reloader = Reloader(path, pipeline)
    write(tmp_path, ["first", "late"])  # edited after it was read
    caplog.set_level("INFO", logger="streamer.reload")
    reloader.request()
    reloader.request()  # both before the start: one reload
    stop = asyncio.Event()
    runner = asyncio.create_task(pipeline.run(stop))
    try:
        async with asyncio.timeout(20):
            while pipeline.metrics.source("late").records < 5:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await runner
        await reloader.close()
    header, staged = read_stage_rows(tmp_path / "stage")
    assert header == ["id", "k"]
    assert sorted(staged) == sorted([str(r["id"]), r["k"]] for r in rows["first"] + rows["late"])
    reloads = [r.message for r in caplog.records if r.message.startswith("reload: ")]
    assert len(reloads) == 1 and "added sources late" in reloads[0], reloads
