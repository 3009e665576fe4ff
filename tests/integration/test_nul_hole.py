"""A log with a hole of NUL bytes (a crash with delayed allocation: the file's size
was written, its data was not; `truncate -s` makes one) loads the record after the
hole, and the hole is one dead letter naming its offset and length, not its NULs."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import duckdb
import orjson
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


def config(tmp: Path, *, follow: bool, api: str = "", limit: int | None = None) -> Path:
    return write_config(tmp, base_config(tmp, api=api, checkpoint_interval_s=0.1)
                        + file_source(tmp / "in.ndjson", name="input", follow=follow,
                                      extra=toml_keys(max_line_bytes=limit))
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


def write_cut_line(path: Path, records: list[dict], hole_to: int) -> tuple[int, bytes, int]:
    """`records`, then a record cut short and NULs from there to offset `hole_to`, as
    delayed allocation leaves a block written only in part: (the cut line's offset,
    its bytes, the hole's length)."""
    write_ndjson(path, records, mode="ab")
    start = path.stat().st_size
    prefix = b'{"id": 999, "host": "cut-sh'
    with path.open("ab") as out:
        out.write(prefix)
    os.truncate(path, hole_to)
    return start, prefix, hole_to - start - len(prefix)


@pytest.mark.parametrize(("oversize", "count"), [(False, 50), (True, 300)])
def test_a_hole_from_the_middle_of_a_line_is_one_dead_letter_and_the_next_record_loads(
        tmp_path: Path, oversize: bool, count: int):
    """`printf '{"a":1,"b":"xxxx' > f; truncate -s 8192 f; echo '{"next":2}' >> f`: the
    cut line and its NULs were one line with the record after them (invalid JSON, or
    over max_line_bytes and skipped to the next newline): that record was lost. Under
    the limit and over it (4096 here), small batches and large (both stage encoders)."""
    before, after = make_records(count), make_records(count, start=count)
    path = tmp_path / "in.ndjson"
    hole_to = (len(b"".join(orjson.dumps(r) + b"\n" for r in before)) // 4096 + 3) * 4096
    offset, prefix, hole = write_cut_line(path, before, hole_to)
    write_ndjson(path, after, mode="ab")
    cfg = config(tmp_path, follow=False, limit=4096 if oversize else None)
    done = run_cli("run", "-c", str(cfg))
    assert done.code == 0, done.stderr[-3000:]
    assert loaded(tmp_path) == as_rows(before + after)
    letters = read_dead_letters(tmp_path / "data", "input")
    assert [(d["offset"], d["reason"], d["raw"]) for d in letters] == [
        (offset, nul_hole_reason(hole, len(prefix)), prefix.decode())]


def test_follow_a_hole_from_the_middle_of_a_line_then_records(tmp_path: Path):
    """Followed: the cut line's NULs at the file's end are held (offset at the line's
    start), then the records written after them load."""
    before, after = make_records(50), make_records(50, start=50)
    path = tmp_path / "in.ndjson"
    write_ndjson(path, before)
    port = free_port()
    daemon = Daemon(config(tmp_path, follow=True, api=f"127.0.0.1:{port}", limit=4096),
                    tmp_path / "run.log")
    try:
        wait_until(lambda: loaded(tmp_path) == as_rows(before), what="the first rows")
        hole_to = (path.stat().st_size // 4096 + 3) * 4096
        offset, prefix, hole = write_cut_line(path, [], hole_to)
        wait_until(lambda: scrape(port).get(
            ("streamer_source_bytes_total", (("source", "input"),))) == hole_to,
            what="the hole read")
        assert read_dead_letters(tmp_path / "data", "input") == []  # its end not seen
        write_ndjson(path, after, mode="ab")
        wait_until(lambda: loaded(tmp_path) == as_rows(before + after), timeout=60,
                   what="the rows after the hole")
        stop(daemon)
    finally:
        daemon.stop()
    letters = read_dead_letters(tmp_path / "data", "input")
    assert [(d["offset"], d["reason"], d["raw"]) for d in letters] == [
        (offset, nul_hole_reason(hole, len(prefix)), prefix.decode())]


def test_follow_reads_nuls_at_the_end_that_a_writer_fills_in_later(tmp_path: Path):
    """A preallocated log (NULs first, written in place later by pwrite or an mmap):
    the NULs at the file's end are read again while they are its end, so what is
    written into them from their start loads; the NULs still left when records are
    appended after them are the hole, reported once with their length."""
    before = make_records(50)
    written, after = make_records(40, start=50), make_records(30, start=90)
    path = tmp_path / "in.ndjson"
    write_ndjson(path, before)
    port = free_port()
    daemon = Daemon(config(tmp_path, follow=True, api=f"127.0.0.1:{port}", limit=4096),
                    tmp_path / "run.log")
    read = ("streamer_source_bytes_total", (("source", "input"),))
    try:
        wait_until(lambda: loaded(tmp_path) == as_rows(before), what="the first rows")
        start = punch_hole(path, 64 * 1024)  # fallocate-like: the size first
        wait_until(lambda: (scrape(port).get(read) or 0) >= start + 64 * 1024,
                   what="the NULs read")
        data = b"".join(orjson.dumps(r) + b"\n" for r in written)
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, data[:3000], start)  # in two writes, as a writer would
            wait_until(lambda: loaded(tmp_path) != as_rows(before), what="a first row")
            os.pwrite(fd, data[3000:], start + 3000)
        finally:
            os.close(fd)
        wait_until(lambda: loaded(tmp_path) == as_rows(before + written), timeout=60,
                   what="the rows written into the NULs")
        assert read_dead_letters(tmp_path / "data", "input") == []
        write_ndjson(path, after, mode="ab")
        wait_until(lambda: loaded(tmp_path) == as_rows(before + written + after), timeout=60,
                   what="the rows after the NULs")
        stop(daemon)
    finally:
        daemon.stop()
    letters = read_dead_letters(tmp_path / "data", "input")
    assert [(d["offset"], d["reason"], d["raw"]) for d in letters] == [
        (start + len(data), nul_hole_reason(64 * 1024 - len(data)), "")]
