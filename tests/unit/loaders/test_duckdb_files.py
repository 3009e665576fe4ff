import duckdb

from streamer.core.deadletter import DeadLetters
from streamer.loaders.config import DuckDBLoad
from streamer.loaders.duckdb import FILES_TABLE, DuckDBLoader
from streamer.sinks.stage.config import CsvOptions
from streamer.sinks.stage.journal import Window

STREAM_FILE = "part-s0123456789abcdef-000000000000000.csv"


def loader(tmp_path, per_file=True):
    return DuckDBLoader(DuckDBLoad(type="duckdb", table="t"), ["id", "v"], CsvOptions(),
                        tmp_path / "db.duckdb", "st", DeadLetters(tmp_path / "dl"),
                        per_file=per_file)


def staged(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,v\n" + "".join(f"{i},{v}\n" for i, v in rows))
    return str(path)


def table(tmp_path):
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    try:
        return (sorted(con.execute("SELECT id, v FROM t").fetchall()),
                sorted(con.execute(f"SELECT file, window_id FROM {FILES_TABLE}").fetchall()))
    finally:
        con.close()


async def test_a_file_loaded_once_is_not_loaded_again_by_another_window(tmp_path):
    first = staged(tmp_path / "w1" / STREAM_FILE, [(1, "a"), (2, "b")])
    numbered = staged(tmp_path / "w1" / "part-00001.csv", [(3, "c")])
    result = await loader(tmp_path).load(Window("w1"), [first, numbered], lambda **_: None)
    assert result["rows"] == 3
    # the same stream file again (rewritten, in another window), and a new one
    again = staged(tmp_path / "w2" / STREAM_FILE, [(1, "a"), (2, "b")])
    other = staged(tmp_path / "w2" / "part-00001.csv", [(4, "d")])
    result = await loader(tmp_path).load(Window("w2"), [again, other], lambda **_: None)
    assert result["rows"] == 1
    rows, marked = table(tmp_path)
    assert rows == [("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")]
    assert marked == sorted([(STREAM_FILE, "w1"), ("w1/part-00001.csv", "w1"),
                             ("w2/part-00001.csv", "w2")])
