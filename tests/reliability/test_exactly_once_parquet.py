"""Exactly once with Parquet stage files (a row group per batch streamed into the open
file, its footer written when it closes): files tailed while they grow -> a local
exactly-once stage in Parquet -> DuckDB, across seeded kill -9 at random moments and at
each step, then a clean finish: every record is in the stage once and in the table once,
cell for cell."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.helpers import make_records
from tests.helpers.exactly_once import (
    assert_each_once,
    loaded_rows,
    tailed_stage_config,
    text_rows,
)
from tests.helpers.records import COLUMNS, expected_rows
from tests.reliability.kills import kill_while_writing

# a hang guard: seven runs killed and a clean one took 300 s at load ~20
pytestmark = pytest.mark.timeout(900)

RECORDS = 20_000
SEED = 23
RANDOM_KILLS = 3
AIMED = ["stage.written:4", "stage.completed:2", "stage.journaled:2", "load.committed:1"]
SINK = ('format = "parquet"\nexactly_once = true\nmax_file_records = 2000\n'
        "window_files = 4\nwindow_age_s = 1.0\nbatch = { max_records = 500, linger_ms = 50 }\n")


def test_kill_9_with_parquet_files_stages_and_loads_every_record_once(tmp_path: Path) -> None:
    records = make_records(RECORDS, seed=SEED)

    kill_while_writing(tmp_path, records, SEED,
                       lambda follow: tailed_stage_config(tmp_path, follow, SINK),
                       AIMED, RANDOM_KILLS)

    want = expected_rows(sorted(records, key=lambda r: r["id"]), COLUMNS)
    files = sorted(str(p) for p in (tmp_path / "stage").glob("*/part-*"))
    assert files and all(f.endswith(".parquet") for f in files)
    staged = text_rows(duckdb.connect(), f"read_parquet({files!r})")
    assert_each_once(staged, RECORDS, "the stage")
    assert staged == want
    loaded = loaded_rows(tmp_path / "data" / "streamer.duckdb")
    assert_each_once(loaded, RECORDS, "DuckDB")
    assert loaded == want
