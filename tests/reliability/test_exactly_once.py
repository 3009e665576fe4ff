"""Exactly once (issue #19): files tailed while they grow and rotate -> a local stage
in exactly-once mode -> DuckDB, across seeded kill -9 at random moments and at each
step (a file written, completed, journaled; a load inserted, committed), then a clean
finish: every record is in the stage once and in the table once, cell for cell."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.helpers import (
    Daemon,
    assert_stage_equals,
    base_config,
    file_source,
    make_records,
    run_cli,
    stage_sink,
    summary_identity_problems,
    toml_keys,
    write_config,
    write_ndjson,
)
from tests.helpers.records import COLUMNS, expected_rows

pytestmark = pytest.mark.timeout(150)

RECORDS = 60_000
SEED = 19
RANDOM_KILLS = 7
# the fault points (streamer/runtime/faults.py): the process SIGKILLs itself there
AIMED = ["stage.written:5", "stage.completed:3", "stage.journaled:3", "load.inserted:1",
         "load.committed:1"]
FILES = ("a.log", "b.log", "c.log")

SINK = ("exactly_once = true\nmax_file_records = 3000\nwindow_files = 4\n"
        "window_age_s = 1.0\nbatch = { max_records = 500, linger_ms = 50 }\n")


class Writer(threading.Thread):
    """Appends the records to the three files in small slices while the daemon is
    killed and restarted; c.log is rotated (renamed to c.log.1) half way."""

    def __init__(self, directory: Path, records: list[dict[str, Any]], seed: int) -> None:
        super().__init__(daemon=True)
        self._dir = directory
        self._records = records
        self._rng = random.Random(seed)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            position, rotated = 0, False
            while position < len(self._records):
                size = self._rng.randint(100, 900)
                name = self._rng.choice(FILES)
                write_ndjson(self._dir / name, self._records[position:position + size], "ab")
                position += size
                if not rotated and position > len(self._records) // 2:
                    os.rename(self._dir / "c.log", self._dir / "c.log.1")
                    rotated = True
                time.sleep(self._rng.uniform(0.1, 0.25))
        except BaseException as exc:  # reported by the test
            self.error = exc


def config_text(tmp: Path, follow: bool) -> str:
    load = "[sinks.stage.load]\n" + toml_keys(type="duckdb", table="events")
    return (base_config(tmp, checkpoint_interval_s=1.0)
            + file_source(str(tmp / "in" / "*.log"), follow=follow, extra="read_bytes = 16384")
            + stage_sink(tmp, max_file_age_s=0.3, extra=SINK) + load)


def table_rows(db: Path) -> list[list[str]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = ", ".join(f'"{c}"' for c in COLUMNS)
        rows = con.execute(f"SELECT {names} FROM events").fetchall()
    finally:
        con.close()
    return [["" if cell is None else str(cell) for cell in row] for row in rows]


def kill_once(config: Path, log: Path, rng: random.Random, aimed: str | None) -> str:
    """One run that ends in a kill -9: aimed at a step (the process kills itself
    there) or at a random moment; what happened."""
    env = {"STREAMER_FAULT": aimed} if aimed else {}
    daemon = Daemon(config, log, env=env)
    try:
        if aimed:
            try:
                code = daemon.proc.wait(8)
            except Exception:
                daemon.kill()
                return f"{aimed}: not reached in 8 s"
            assert code == -9, daemon.log[-3000:]
            return f"{aimed}: killed itself"
        time.sleep(rng.uniform(0.4, 1.8))
        assert daemon.proc.poll() is None, daemon.log[-3000:]
        daemon.kill()
        return "random"
    finally:
        daemon.stop()


def test_kill_9_at_every_step_stages_and_loads_every_record_once(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    records = make_records(RECORDS, seed=SEED)
    (tmp_path / "in").mkdir()
    for name in FILES:
        (tmp_path / "in" / name).touch()
    config = write_config(tmp_path, config_text(tmp_path, follow=True))
    writer = Writer(tmp_path / "in", records, SEED)
    writer.start()
    plan: list[str | None] = [*AIMED, *[None] * RANDOM_KILLS]
    rng.shuffle(plan)
    outcomes = [kill_once(config, tmp_path / f"run{i}.log", rng, aimed)
                for i, aimed in enumerate(plan)]
    writer.join(60)
    assert writer.error is None and not writer.is_alive(), writer.error
    print("kills:", outcomes)
    assert sum(o != "random" and "killed itself" in o for o in outcomes) >= 3, outcomes

    config.write_text(config_text(tmp_path, follow=False))
    done = run_cli("run", "-c", str(config))
    assert done.code == 0, done.stderr[-3000:]
    assert not summary_identity_problems(done.summary)

    assert_stage_equals(tmp_path / "stage", records)  # 0 lost, 0 duplicated, every cell
    loaded = table_rows(tmp_path / "data" / "streamer.duckdb")
    ids = Counter(int(row[0]) for row in loaded)
    assert len(ids) == RECORDS and set(ids.values()) == {1}, (
        f"{RECORDS - len(ids)} lost, {sum(ids.values()) - len(ids)} duplicated in DuckDB")
    want = expected_rows(sorted(records, key=lambda r: r["id"]), COLUMNS)
    assert sorted(loaded, key=lambda r: int(r[0])) == want
