"""A DuckDB load commits only when every record its window staged is a row inserted or
a row rejected (dead-lettered): a reader that skips a row without an error fails it."""

import gzip

import duckdb
import orjson
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


async def test_rows_rejected_counts_rows_not_bad_cells(tmp_path):
    files = [staged(tmp_path / "w1" / "part-00001.csv", [(1, 10), ("x", "y"), (3, 30)])]
    types = {"id": "INTEGER", "v": "INTEGER"}
    result = await loader(tmp_path, types=types).load(window("w1", 3), files,
                                                      lambda **_: None)
    assert result == {"rows": 2, "rows_rejected": 1}
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    assert con.execute(f"SELECT window_id, rows, rows_rejected FROM {MARKER_TABLE}"
                       ).fetchall() == [("w1", 2, 1)]
    con.close()
    # the dead letters keep one entry per bad cell, each with its reason
    lines = (tmp_path / "dl" / "st.ndjson").read_bytes().splitlines()
    assert [orjson.loads(line)["column"] for line in lines] == ["id", "v"]


async def test_a_window_closed_from_its_files_is_checked_against_their_count(tmp_path):
    # 0: a window an earlier run left open, closed from its files after a restart
    files = [staged(tmp_path / "w1" / "part-00001.csv.gz",
                    [(1, "a"), (2, "y" * PAST_THE_BUFFER), (3, "c")], compress=True),
             staged(tmp_path / "w1" / "part-00002.csv", [(4, '"two\nlines, quoted"')])]
    with pytest.raises(PermanentLoadError) as failed:
        await loader(tmp_path).load(window("w1", 0), files, lambda **_: None)
    assert str(failed.value).startswith(
        "DuckDB read 3 rows and rejected 0 from the window's 2 files, which hold 4 "
        "records (counted in the files): 1 records missing")
    assert contents(tmp_path) == ([], [])
    # a window whose files DuckDB reads whole loads (a quoted cell over two lines, a
    # doubled quote: one record each)
    whole = [staged(tmp_path / "w2" / "part-00001.csv.gz",
                    [(1, '"a ""quoted"" word"'), (2, '"x\ny\nz"')], compress=True),
             staged(tmp_path / "w2" / "part-00002.csv", [(3, "c")])]
    assert (await loader(tmp_path).load(window("w2", 0), whole, lambda **_: None)
            == {"rows": 3, "rows_rejected": 0})


async def test_an_exactly_once_window_is_checked_against_the_files_it_loads(tmp_path):
    first = staged(tmp_path / "w1" / STREAM_FILE, [(1, "a"), (2, "b")])
    result = await loader(tmp_path, per_file=True).load(window("w1", 2), [first],
                                                        lambda **_: None)
    assert result["rows"] == 2
    # a file another window loaded before is left out of this one's rows and count
    again = staged(tmp_path / "w2" / STREAM_FILE, [(1, "a"), (2, "b")])
    other = staged(tmp_path / "w2" / "part-00001.csv", [(4, "d")])
    result = await loader(tmp_path, per_file=True).load(window("w2", 3), [again, other],
                                                        lambda **_: None)
    assert result["rows"] == 1
    assert contents(tmp_path) == ([("1", 1), ("2", 1), ("4", 1)],
                                  [("w1", 2, 0), ("w2", 1, 0)])
    # ... and a row of the files it does load skipped by DuckDB fails it
    third = staged(tmp_path / "w3" / STREAM_FILE, [(1, "a"), (2, "b")])
    long = staged(tmp_path / "w3" / "part-00001.csv.gz",
                  [(5, "e"), (6, "y" * PAST_THE_BUFFER)], compress=True)
    with pytest.raises(PermanentLoadError, match=r"read 1 rows and rejected 0 from the "
                       r"window's 1 files, which hold 2 records \(counted in the files\)"):
        await loader(tmp_path, per_file=True).load(window("w3", 4), [third, long],
                                                   lambda **_: None)


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
async def test_windows_of_every_format_closed_from_their_files_load_whole(tmp_path, fmt):
    con = duckdb.connect()
    rows = [(1, "a"), (2, "line\nbreak"), (3, "c")]
    con.execute("CREATE TABLE src AS SELECT * FROM (VALUES " + ", ".join(
        f"('{i}', '{v}')" for i, v in rows) + ") AS s(id, v)")
    files = []
    for n, compression in enumerate(["gzip", "zstd"] if fmt == "ndjson" else ["zstd"]):
        suffix = {"gzip": ".gz", "zstd": ".zst"}[compression] if fmt == "ndjson" else ""
        path = tmp_path / "w1" / f"part-{n:05d}.{fmt}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        options = ("FORMAT json" if fmt == "ndjson" else "FORMAT parquet") + (
            f", COMPRESSION {compression}")
        con.execute(f"COPY src TO '{path}' ({options})")
        files.append(str(path))
    cfg = DuckDBLoad(type="duckdb", table="t")
    load = DuckDBLoader(cfg, ["id", "v"], CsvOptions(), tmp_path / "db.duckdb", "st",
                        DeadLetters(tmp_path / "dl"), fmt=fmt)
    result = await load.load(window("w1", 0), files, lambda **_: None)
    assert result == {"rows": 3 * len(files), "rows_rejected": 0}
    assert contents(tmp_path)[0] == sorted([(str(i), len(v)) for i, v in rows] * len(files))
