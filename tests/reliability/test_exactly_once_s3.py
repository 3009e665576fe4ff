"""Exactly once (issue #19) into S3: files tailed while they grow and rotate -> an s3://
stage (moto) in exactly-once mode -> Timestream batch loads (the emulator), across
seeded kill -9 at random moments and at each step (an object written, uploaded,
journaled; a task or job created before its id is journaled), then a clean finish:
every record is staged once and in the table once, value for value; with Data
Exchange every staged object is imported once."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.gen import COLUMN_TYPES, iter_records
from tests.fixtures.batchload import BatchLoadEmulator
from tests.fixtures.moto_s3 import MotoServer
from tests.helpers import (
    BENCH_COLUMNS,
    list_keys,
    read_rows,
    run_cli,
    s3_stage_config,
    toml_value,
)
from tests.helpers.records import expected_rows
from tests.reliability.kills import Writer, run_kills

pytestmark = pytest.mark.timeout(150)

RECORDS = 30_000
SEED = 23
RANDOM_KILLS = 6
AIMED = ["stage.written:4", "stage.completed:2", "stage.journaled:2", "load.created:1"]
DB, TABLE, PREFIX = "streamer_db", "requests", "stage/"
DIMENSIONS = ("host", "service", "region", "trace_id", "session")
MEASURES = [(c, COLUMN_TYPES[c]) for c in BENCH_COLUMNS if c not in DIMENSIONS and c != "time"]

SINK = ("exactly_once = true\nmax_file_records = 2500\nmax_file_age_s = 0.3\n"
        "window_files = 4\nwindow_age_s = 1.0\n")


def timestream_load(url: str) -> str:
    dims = ", ".join(f"{d} = {toml_value(d)}" for d in DIMENSIONS)
    measures = ", ".join(f"{{ source = {toml_value(c)}, type = {toml_value(t)} }}"
                         for c, t in MEASURES)
    return (f"type = \"timestream\"\nendpoint_url = {toml_value(url)}\ndatabase = \"{DB}\"\n"
            f"table = \"{TABLE}\"\ntime_column = \"time\"\ntime_unit = \"SECONDS\"\n"
            f"dimensions = {{ {dims} }}\nmeasure_name = \"request\"\n"
            f"measures = [{measures}]\npoll_initial_s = 0.2\npoll_max_s = 0.5\n")


def typed(value: Any, kind: str) -> Any:
    return float(value) if kind == "DOUBLE" else int(value) if kind == "BIGINT" else str(value)


def expected_table(records: list[dict[str, Any]]) -> Counter:
    return Counter(
        (r["time"] * 10**9,
         tuple(sorted((d, str(r[d])) for d in DIMENSIONS if r.get(d) is not None)),
         tuple(sorted((c, typed(r[c], t)) for c, t in MEASURES if r.get(c) is not None)))
        for r in records)


def table(rows: list[dict[str, Any]]) -> Counter:
    return Counter((row["time_ns"], tuple(sorted(row["dimensions"].items())),
                    tuple(sorted(row["measures"].items()))) for row in rows)


def kill_and_finish(tmp_path: Path, moto: MotoServer, bucket: str, load: str,
                    aimed: list[str]) -> list[dict[str, Any]]:
    """The writer and the kills, then a `follow = false` run to the end; checks that
    every record is staged once and returns them."""
    rng = random.Random(SEED)
    records = list(iter_records(RECORDS, seed=7))  # (time, dimensions) unique
    (tmp_path / "in").mkdir()

    def config(follow: bool) -> Path:
        return s3_stage_config(tmp_path, paths=[tmp_path / "in" / "*.log"], bucket=bucket,
                               prefix=PREFIX, s3_endpoint=moto.endpoint_url, follow=follow,
                               sink=SINK, load=load)

    writer = Writer(tmp_path / "in", records, SEED, tmp_path / "data" / "checkpoints" / "f.json")
    writer.start()
    run_kills(config(follow=True), tmp_path, rng, aimed, RANDOM_KILLS, env=moto.aws_env(),
              writing=writer.writing)
    writer.finish()

    done = run_cli("run", "-c", str(config(follow=False)), env=moto.aws_env())
    assert done.code == 0, done.stderr[-3000:]
    _, staged = read_rows(moto.s3(), bucket, PREFIX)
    want = Counter(map(tuple, expected_rows(records, BENCH_COLUMNS)))
    got = Counter(map(tuple, staged))
    assert got == want, (f"stage: {sum((want - got).values())} lost, "
                         f"{sum((got - want).values())} duplicated or unknown")
    return records


def test_kill_9_at_every_step_stages_and_loads_into_timestream_once(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    emu.register_table(DB, TABLE)
    emu.configure(task_delay=0.2)
    records = kill_and_finish(tmp_path, moto_s3, s3_bucket, timestream_load(emu.endpoint_url),
                              AIMED)
    loaded, expected = table(emu.rows(DB, TABLE)), expected_table(records)
    assert loaded == expected, (f"table: {sum((expected - loaded).values())} lost, "
                                f"{sum((loaded - expected).values())} duplicated or unknown")
    # a create repeated after a kill (load.created) reuses its ClientToken: one task
    assert len(emu.tasks()) == len(emu.client_token_counts())


def test_kill_9_at_every_step_stages_and_imports_each_object_once(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    emu.configure(job_delay=0.1)
    data_set = emu.register_data_set(name="exactly-once")
    load = (f"type = \"dataexchange\"\nendpoint_url = {toml_value(emu.endpoint_url)}\n"
            f"data_set_id = {toml_value(data_set)}\nmax_assets_per_job = 2\n"
            "poll_initial_s = 0.1\npoll_max_s = 0.5\n")
    kill_and_finish(tmp_path, moto_s3, s3_bucket, load, AIMED)
    imported = [key for rev in emu.revisions(data_set)
                for key in (a["Source"]["Key"] for a in emu.assets(data_set, rev["Id"]))]
    staged = list_keys(moto_s3.s3(), s3_bucket, PREFIX)
    staged = [k for k in staged if "/part-" in k]
    assert sorted(imported) == sorted(staged)  # every object once, in one revision
