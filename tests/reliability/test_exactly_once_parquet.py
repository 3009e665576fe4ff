"""Exactly once with Parquet stage files (a row group per batch streamed into the open
file, its footer written when it closes): files tailed while they grow -> a local
exactly-once stage in Parquet -> DuckDB, across seeded kill -9 at random moments and at
each step, then a clean finish: every record is in the stage once and in the table once,
cell for cell."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from tests.helpers import (
    base_config,
    file_source,
    make_records,
    run_cli,
    stage_sink,
    summary_identity_problems,
    toml_keys,
    write_config,
)
from tests.helpers.records import COLUMNS, expected_rows
from tests.reliability.kills import Writer, run_kills

pytestmark = pytest.mark.timeout(150)

RECORDS = 20_000
SEED = 23
RANDOM_KILLS = 3
AIMED = ["stage.written:4", "stage.completed:2", "stage.journaled:2", "load.committed:1"]
SINK = ('format = "parquet"\nexactly_once = true\nmax_file_records = 2000\n'
        "window_files = 4\nwindow_age_s = 1.0\nbatch = { max_records = 500, linger_ms = 50 }\n")


def config_text(tmp: Path, follow: bool) -> str:
    load = "[sinks.stage.load]\n" + toml_keys(type="duckdb", table="events",
                                             delete_staged=False)
    return (base_config(tmp, checkpoint_interval_s=1.0)
            + file_source(str(tmp / "in" / "*.log"), follow=follow, extra="read_bytes = 16384")
            + stage_sink(tmp, max_file_age_s=0.3, extra=SINK) + load)


def text_rows(con: duckdb.DuckDBPyConnection, source: str) -> list[list[str]]:
    """Rows as CSV cells (Parquet and the table hold null where CSV has '')."""
    names = ", ".join(f'"{c}"' for c in COLUMNS)
    rows = con.execute(f"SELECT {names} FROM {source}").fetchall()
    return sorted(([("" if cell is None else str(cell)) for cell in row] for row in rows),
                  key=lambda row: int(row[0]))


def test_kill_9_with_parquet_files_stages_and_loads_every_record_once(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    records = make_records(RECORDS, seed=SEED)
    (tmp_path / "in").mkdir()
    config = write_config(tmp_path, config_text(tmp_path, follow=True))
    writer = Writer(tmp_path / "in", records, SEED,
                    tmp_path / "data" / "checkpoints" / "events.json")
    writer.start()
    run_kills(config, tmp_path, rng, AIMED, RANDOM_KILLS)
    writer.finish()

    config.write_text(config_text(tmp_path, follow=False))
    done = run_cli("run", "-c", str(config))
    assert done.code == 0, done.stderr[-3000:]
    assert not summary_identity_problems(done.summary)

    want = expected_rows(sorted(records, key=lambda r: r["id"]), COLUMNS)
    files = sorted(str(p) for p in (tmp_path / "stage").glob("*/part-*"))
    assert files and all(f.endswith(".parquet") for f in files)
    staged = text_rows(duckdb.connect(), f"read_parquet({files!r})")
    ids = Counter(int(row[0]) for row in staged)
    assert len(ids) == RECORDS and set(ids.values()) == {1}, (
        f"{RECORDS - len(ids)} lost, {sum(ids.values()) - len(ids)} duplicated in the stage")
    assert staged == want
    con = duckdb.connect(str(tmp_path / "data" / "streamer.duckdb"), read_only=True)
    assert text_rows(con, "events") == want
