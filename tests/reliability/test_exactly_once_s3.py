"""Exactly once (issue #19) into S3: files tailed while they grow and rotate -> an s3://
stage (moto) in exactly-once mode -> Timestream batch loads (the emulator), across
seeded kill -9 at random moments and at each step (an object written, uploaded,
journaled; a task created before its id is journaled), then a clean finish: every
record is staged once and in the table once, value for value."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.gen import COLUMN_TYPES, iter_records
from tests.fixtures.batchload import BatchLoadEmulator
from tests.fixtures.moto_s3 import MotoServer
from tests.helpers import BENCH_COLUMNS, read_rows, run_cli, s3_stage_config, toml_value
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


def test_kill_9_at_every_step_stages_and_loads_every_record_once(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    emu.register_table(DB, TABLE)
    emu.configure(task_delay=0.2)
    rng = random.Random(SEED)
    records = list(iter_records(RECORDS, seed=7))  # (time, dimensions) unique
    (tmp_path / "in").mkdir()

    def config(follow: bool) -> Path:
        path = s3_stage_config(tmp_path, paths=[tmp_path / "in" / "*.log"], bucket=s3_bucket,
                               prefix=PREFIX, s3_endpoint=moto_s3.endpoint_url, follow=follow,
                               sink=SINK, load=timestream_load(emu.endpoint_url))
        # checkpoints every second: a run knows c.log before it is rotated away (a file
        # rotated away before any checkpoint named it is lost while stopped, see README)
        path.write_text("checkpoint_interval_s = 1.0\n" + path.read_text())
        return path

    writer = Writer(tmp_path / "in", records, SEED,
                    tmp_path / "data" / "checkpoints" / "f.json")
    writer.start()
    run_kills(config(follow=True), tmp_path, rng, AIMED, RANDOM_KILLS, env=moto_s3.aws_env())
    writer.finish()

    done = run_cli("run", "-c", str(config(follow=False)), env=moto_s3.aws_env())
    assert done.code == 0, done.stderr[-3000:]

    _, staged = read_rows(moto_s3.s3(), s3_bucket, PREFIX)
    want = Counter(map(tuple, expected_rows(records, BENCH_COLUMNS)))
    got = Counter(map(tuple, staged))
    assert got == want, (f"stage: {sum((want - got).values())} lost, "
                         f"{sum((got - want).values())} duplicated or unknown")
    loaded, expected = table(emu.rows(DB, TABLE)), expected_table(records)
    assert loaded == expected, (f"table: {sum((expected - loaded).values())} lost, "
                                f"{sum((loaded - expected).values())} duplicated or unknown")
    # a create repeated after a kill (load.created) reuses its ClientToken: one task
    assert len(emu.tasks()) == len(emu.client_token_counts())
