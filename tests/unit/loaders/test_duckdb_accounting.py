"""A DuckDB load commits only when every record its window staged is a row inserted or
a row rejected (dead-lettered): a reader that skips a row without an error fails it."""

import gzip

import duckdb
import pytest

from streamer.core.deadletter import DeadLetters
from streamer.loaders.base import PermanentLoadError
from streamer.loaders.config import DuckDBLoad
from streamer.loaders.duckdb import MARKER_TABLE, DuckDBLoader
from streamer.sinks.stage.config import CsvOptions
from streamer.sinks.stage.journal import Window

PAST_THE_BUFFER = 33_000_000  # DuckDB's buffer for a compressed CSV: 16 x 2,000,000
STREAM_FILE = "part-s0123456789abcdef-000000000000000.csv"


def loader(tmp_path, per_file=False, types=None):
    cfg = DuckDBLoad(type="duckdb", table="t", column_types=types or {})
    return DuckDBLoader(cfg, ["id", "v"], CsvOptions(), tmp_path / "db.duckdb", "st",
                        DeadLetters(tmp_path / "dl"), per_file=per_file)


def staged(path, rows, compress=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("id,v\n" + "".join(f"{i},{v}\n" for i, v in rows)).encode()
    path.write_bytes(gzip.compress(text, 1) if compress else text)
    return str(path)


def contents(tmp_path):
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    try:
        return (sorted(con.execute("SELECT id, length(v) FROM t").fetchall()),
                con.execute(f"SELECT window_id, rows, rows_rejected FROM {MARKER_TABLE}")
                .fetchall())
    finally:
        con.close()


def window(name, records):
    w = Window(name)
    w.records = records
    return w


async def test_a_row_duckdb_skips_without_an_error_fails_the_window_uncommitted(tmp_path):
    files = [staged(tmp_path / "w1" / "part-00001.csv.gz",
                    [(1, "a"), (2, "y" * PAST_THE_BUFFER), (3, "c")], compress=True)]
    with pytest.raises(PermanentLoadError) as failed:
        await loader(tmp_path).load(window("w1", 3), files, lambda **_: None)
    assert str(failed.value) == (
        "DuckDB read 2 rows and rejected 0 from the window's 1 files, which hold 3 "
        "records: 1 records missing (a row longer than DuckDB reads from a compressed "
        "stage file?); nothing of the window was loaded")
    assert contents(tmp_path) == ([], [])  # neither rows nor marker: retried whole


async def test_more_rows_than_staged_fail_the_window_too(tmp_path):
    files = [staged(tmp_path / "w1" / "part-00001.csv", [(1, "a"), (2, "b")])]
    with pytest.raises(PermanentLoadError, match="1 rows more than were staged"):
        await loader(tmp_path).load(window("w1", 1), files, lambda **_: None)
    assert contents(tmp_path) == ([], [])


async def test_a_rejected_row_counts_once_whatever_its_bad_cells(tmp_path):
    files = [staged(tmp_path / "w1" / "part-00001.csv", [(1, 10), ("x", "y"), (3, 30)])]
    types = {"id": "INTEGER", "v": "INTEGER"}
    result = await loader(tmp_path, types=types).load(window("w1", 3), files,
                                                      lambda **_: None)
    assert result["rows"] == 2
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    assert sorted(con.execute("SELECT id, v FROM t").fetchall()) == [(1, 10), (3, 30)]


async def test_windows_whose_count_is_not_known_are_not_checked(tmp_path):
    # 0: a window an earlier run left open, closed from its files after a restart
    first = staged(tmp_path / "w1" / STREAM_FILE, [(1, "a"), (2, "b")])
    result = await loader(tmp_path, per_file=True).load(window("w1", 0), [first],
                                                        lambda **_: None)
    assert result["rows"] == 2
    # exactly once: a file another window loaded before is left out of this one's rows
    again = staged(tmp_path / "w2" / STREAM_FILE, [(1, "a"), (2, "b")])
    other = staged(tmp_path / "w2" / "part-00001.csv", [(4, "d")])
    result = await loader(tmp_path, per_file=True).load(window("w2", 3), [again, other],
                                                        lambda **_: None)
    assert result["rows"] == 1
    assert contents(tmp_path) == ([("1", 1), ("2", 1), ("4", 1)],
                                  [("w1", 2, 0), ("w2", 1, 0)])
