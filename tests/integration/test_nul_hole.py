"""A log with a hole of NUL bytes (a crash with delayed allocation: the file's size
was written, its data was not; `truncate -s` makes one) loads the record after the
hole, and the hole is one dead letter naming its offset and length, not its NULs."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from streamer.core.ndjson import nul_hole_reason
from tests.helpers import (
    Daemon,
    base_config,
    file_source,
    free_port,
    make_records,
    read_dead_letters,
    run_cli,
    scrape,
    stage_sink,
    stop,
    toml_keys,
    wait_until,
    write_config,
    write_ndjson,
)

pytestmark = pytest.mark.timeout(120)

COLUMNS = ["id", "host", "status", "message"]
HOLE = 3 * 2**20  # over the default max_line_bytes (1 MiB)


def config(tmp: Path, *, follow: bool, api: str = "") -> Path:
    return write_config(tmp, base_config(tmp, api=api, checkpoint_interval_s=0.1)
                        + file_source(tmp / "in.ndjson", name="input", follow=follow)
                        + stage_sink(tmp, columns=COLUMNS, max_file_age_s=0.2,
                                     extra="window_age_s = 0.2\n")
                        + "[sinks.stage.load]\n"
                        + toml_keys(type="duckdb", table="events",
                                    column_types={"id": "BIGINT", "status": "BIGINT"}))


def loaded(tmp: Path) -> Counter:
    db = tmp / "data" / "streamer.duckdb"
    if not db.exists():
        return Counter()
    try:  # the daemon holds it while it loads
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.IOException:
        return Counter()
    try:
        return Counter(con.execute(f"SELECT {', '.join(COLUMNS)} FROM events").fetchall())
    except duckdb.CatalogException:
        return Counter()
    finally:
        con.close()


def as_rows(records) -> Counter:
    return Counter(tuple(r[c] for c in COLUMNS) for r in records)


def punch_hole(path: Path, length: int) -> int:
    """NULs after the file's end, as a crash leaves them; the hole's offset."""
    start = path.stat().st_size
    os.truncate(path, start + length)
    return start


def assert_one_hole_dead_letter(tmp: Path, offset: int) -> None:
    letters = read_dead_letters(tmp / "data", "input")
    assert [(d["origin"], d["offset"], d["reason"], d["raw"]) for d in letters] == [
        (str(tmp / "in.ndjson"), offset, nul_hole_reason(HOLE), "")]
    assert b"\\u0000" not in (tmp / "data" / "dead_letter" / "input.ndjson").read_bytes()


def test_one_shot_loads_the_record_after_a_hole(tmp_path: Path):
    before, after = make_records(50), make_records(50, start=50)
    path = tmp_path / "in.ndjson"
    write_ndjson(path, before)
    offset = punch_hole(path, HOLE)
    write_ndjson(path, after, mode="ab")
    done = run_cli("run", "-c", str(config(tmp_path, follow=False)))
    assert done.code == 0, done.stderr[-3000:]
    assert loaded(tmp_path) == as_rows(before + after)
    assert_one_hole_dead_letter(tmp_path, offset)
    assert done.stderr.count(f"offset {offset}: {nul_hole_reason(HOLE)}") == 1, \
        done.stderr[-3000:]


def test_follow_holds_at_a_hole_at_the_end_then_reads_past_it(tmp_path: Path):
    """A followed file whose end is NULs is not read past until a record follows
    them; then the record after the hole is loaded and the hole dead-lettered once."""
    before, after = make_records(50), make_records(50, start=50)
    path = tmp_path / "in.ndjson"
    write_ndjson(path, before)
    port = free_port()
    daemon = Daemon(config(tmp_path, follow=True, api=f"127.0.0.1:{port}"),
                    tmp_path / "run.log")
    read = ("streamer_source_bytes_total", (("source", "input"),))
    try:
        wait_until(lambda: loaded(tmp_path) == as_rows(before), what="the first rows")
        offset = punch_hole(path, HOLE)
        wait_until(lambda: scrape(port).get(read) == offset + HOLE, what="the hole read")
        assert f"offset {offset}" not in daemon.log  # nothing after it yet
        write_ndjson(path, after, mode="ab")
        wait_until(lambda: loaded(tmp_path) == as_rows(before + after), timeout=60,
                   what="the rows after the hole")
        stop(daemon)
    finally:
        daemon.stop()
    assert_one_hole_dead_letter(tmp_path, offset)


def test_a_hole_at_the_end_waits_for_the_next_run_and_is_reported_once(tmp_path: Path):
    """A one-shot run over a file that ends in NULs reads up to them and leaves them
    (its checkpoint at the hole's start); the next run, after records were appended,
    reads the hole again, reports it once and loads the records."""
    before, after = make_records(50), make_records(50, start=50)
    path = tmp_path / "in.ndjson"
    write_ndjson(path, before)
    offset = punch_hole(path, HOLE)
    first = run_cli("run", "-c", str(config(tmp_path, follow=False)))
    assert first.code == 0, first.stderr[-3000:]
    assert f"ends with a line cut short at offset {offset}" in first.stderr
    assert loaded(tmp_path) == as_rows(before)
    assert read_dead_letters(tmp_path / "data", "input") == []
    write_ndjson(path, after, mode="ab")
    second = run_cli("run", "-c", str(config(tmp_path, follow=False)))
    assert second.code == 0, second.stderr[-3000:]
    assert loaded(tmp_path) == as_rows(before + after)
    assert_one_hole_dead_letter(tmp_path, offset)
