"""Exactly once (issue #19): files tailed while they grow and rotate -> a local stage
in exactly-once mode -> DuckDB, across seeded kill -9 at random moments and at each
step (a file written, completed, journaled; a load inserted, committed), then a clean
finish: every record is in the stage once and in the table once, cell for cell."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import (
    Daemon,
    assert_stage_equals,
    base_config,
    checkpoint_offset,
    count_stage_rows,
    file_source,
    make_records,
    read_stage_rows,
    stage_sink,
    stop,
    wait_until,
    write_config,
    write_ndjson,
)
from tests.helpers.exactly_once import assert_each_once, loaded_rows, tailed_stage_config
from tests.helpers.records import COLUMNS, expected_rows
from tests.reliability.kills import kill_while_writing

pytestmark = pytest.mark.timeout(150)

RECORDS = 60_000
SEED = 19
RANDOM_KILLS = 7
# the fault points (streamer/runtime/faults.py): the process SIGKILLs itself there
AIMED = ["stage.written:5", "stage.completed:3", "stage.journaled:3", "load.inserted:1",
         "load.committed:1"]

SINK = ("exactly_once = true\nmax_file_records = 3000\nwindow_files = 4\n"
        "window_age_s = 1.0\nbatch = { max_records = 500, linger_ms = 50 }\n")


def test_kill_9_at_every_step_stages_and_loads_every_record_once(tmp_path: Path) -> None:
    records = make_records(RECORDS, seed=SEED)

    kill_while_writing(tmp_path, records, SEED,
                       lambda follow: tailed_stage_config(tmp_path, follow, SINK),
                       AIMED, RANDOM_KILLS)

    assert_stage_equals(tmp_path / "stage", records)  # 0 lost, 0 duplicated, every cell
    loaded = loaded_rows(tmp_path / "data" / "streamer.duckdb")
    assert_each_once(loaded, RECORDS, "DuckDB")
    assert loaded == expected_rows(sorted(records, key=lambda r: r["id"]), COLUMNS)


def test_a_copy_truncated_file_is_a_new_stream_across_a_kill(tmp_path: Path) -> None:
    """copytruncate, then the same first lines again: the new content is staged (not
    skipped as below the old content's fence), and a kill -9 after it changes nothing."""
    records = make_records(1_200, seed=SEED)
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "app.log"
    write_ndjson(log, records[:1000])
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=0.2)
                          + file_source(str(tmp_path / "in" / "*.log"))
                          + stage_sink(tmp_path, max_file_age_s=0.2,
                                       extra="exactly_once = true"))
    stage, data = tmp_path / "stage", tmp_path / "data"
    daemon = Daemon(config, tmp_path / "run1.log")
    try:
        wait_until(lambda: count_stage_rows(stage) >= 1000, what="the first 1000 staged")
        shutil.copy(log, tmp_path / "in" / "app.log.1")  # logrotate's copytruncate
        os.truncate(log, 0)
        size = write_ndjson(log, records[:500], "ab")  # the same first line: same head
        wait_until(lambda: count_stage_rows(stage) >= 1500
                   and checkpoint_offset(data, "events") == size, what="the rewrite staged")
        daemon.kill()
    finally:
        daemon.stop()
    write_ndjson(log, records[1000:], "ab")
    daemon = Daemon(config, tmp_path / "run2.log")
    try:
        wait_until(lambda: count_stage_rows(stage) >= 1700, what="the growth staged")
        stop(daemon)
    finally:
        daemon.stop()
    _, rows = read_stage_rows(stage)
    want = expected_rows(records[:1000] + records[:500] + records[1000:], COLUMNS)
    assert Counter(map(tuple, rows)) == Counter(map(tuple, want))
