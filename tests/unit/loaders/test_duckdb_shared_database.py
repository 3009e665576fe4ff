"""Stage sinks of one process loading into one DuckDB file take turns: DuckDB's
optimistic concurrency refuses a schema change beside another transaction's (two
sinks' first loads into a new database both add the marker table's columns)."""

import asyncio

import duckdb

from streamer.core.deadletter import DeadLetters
from streamer.loaders.config import DuckDBLoad
from streamer.loaders.duckdb import MARKER_TABLE, DuckDBLoader
from streamer.sinks.stage.config import CsvOptions
from streamer.sinks.stage.journal import Window


def loader(tmp_path, sink, table, lock):
    cfg = DuckDBLoad(type="duckdb", table=table)
    return DuckDBLoader(cfg, ["id", "v"], CsvOptions(), tmp_path / "db.duckdb", sink,
                        DeadLetters(tmp_path / "dl"), lock=lock)


def staged(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,v\n" + "".join(f"{i},{v}\n" for i, v in rows))
    return str(path)


def window(name, records):
    w = Window(name)
    w.records = records
    return w


def database_locks():
    from streamer.pipeline.context import DatabaseLocks
    return DatabaseLocks()


async def test_a_load_waits_for_another_sinks_load_of_the_same_database(tmp_path):
    """Another sink's first load holds its transaction open with the marker table's
    schema change (as `_prepare_tables` makes it).  Before 2026-12-05 each sink had a
    lock of its own, this load ran beside it and DuckDB refused it (`Catalog
    write-write conflict on alter with "_streamer_loads"`): the window failed, a
    one-shot run with CSV, NDJSON and Parquet sinks into one database exited 1."""
    locks = database_locks()
    other = duckdb.connect(str(tmp_path / "db.duckdb"))
    await locks.of(tmp_path / "db.duckdb").acquire()  # sink a's load, mid-way
    other.execute(f"CREATE TABLE {MARKER_TABLE} (window_id VARCHAR PRIMARY KEY, "
                  "sink VARCHAR, target VARCHAR, rows BIGINT, files INTEGER, "
                  "loaded_at TIMESTAMP DEFAULT current_timestamp)")
    other.execute("BEGIN TRANSACTION")
    other.execute(f"ALTER TABLE {MARKER_TABLE} ADD COLUMN IF NOT EXISTS "
                  "rows_rejected BIGINT DEFAULT 0")
    files = [staged(tmp_path / "w1" / "part-00001.csv", [(2, "b"), (3, "c")])]
    load = asyncio.create_task(loader(tmp_path, "b", "tb", locks.of(tmp_path / "db.duckdb"))
                               .load(window("w1", 2), files, lambda **_: None))
    await asyncio.wait({load}, timeout=1.0)  # time for a load that does not wait to fail

    other.execute("COMMIT")
    locks.of(tmp_path / "db.duckdb").release()
    assert await load == {"rows": 2, "rows_rejected": 0}
    assert sorted(other.execute("SELECT * FROM tb").fetchall()) == [("2", "b"), ("3", "c")]
    assert other.execute(f"SELECT window_id, sink, rows FROM {MARKER_TABLE}").fetchall() == [
        ("w1", "b", 2)]
    other.close()


async def test_one_lock_per_database_file(tmp_path):
    locks = database_locks()
    assert locks.of(tmp_path / "." / "db.duckdb") is locks.of(tmp_path / "db.duckdb")
    (tmp_path / "link.duckdb").symlink_to(tmp_path / "db.duckdb")
    assert locks.of(tmp_path / "link.duckdb") is locks.of(tmp_path / "db.duckdb")
    assert locks.of(tmp_path / "other.duckdb") is not locks.of(tmp_path / "db.duckdb")
    loaders = [loader(tmp_path, f"s{n}", f"t{n}", locks.of(tmp_path / "db.duckdb"))
               for n in range(3)]
    files = [staged(tmp_path / f"w{n}" / "part-00001.csv", [(n, "x" * n)] * 2000)
             for n in range(3)]

    await asyncio.gather(*(loaders[n].load(window(f"w{n}", 2000), [files[n]],
                                           lambda **_: None) for n in range(3)))

    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    assert [con.execute(f"SELECT count(*), min(v) FROM t{n}").fetchone() for n in range(3)
            ] == [(2000, None), (2000, "x"), (2000, "xx")]
    con.close()
