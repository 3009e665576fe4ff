"""NDJSON and Parquet batches through both encoders (BatchEncoder): the same typed rows
whether DuckDB's query or the per-record encoder made the cells; a Parquet file's rows
written as row groups as its batches come, its footer by `finish`."""

from __future__ import annotations

import os

import duckdb
import orjson
import pytest

from streamer.core.lines import Lines
from streamer.observability.metrics import SinkStats
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.csv_native import NativeEncodeError
from streamer.sinks.stage.encoding import BatchEncoder
from streamer.sinks.stage.store.local import StagedFile

COLUMNS = [{"name": "n", "type": "integer"}, {"name": "at", "type": "timestamp"},
           {"name": "j", "from": "obj", "type": "json"}, "s"]
RECORDS = [{"n": i, "at": f"2024-02-29T10:00:0{i % 10}.5+01:00", "obj": {"k": [i, None]},
            "s": ["x,y", "", None, "q\"uote\r\nline", 7][i % 5]} for i in range(200)]
RECORDS.append({"n": "n/a"})  # dead-lettered


def encoder(fmt: str, native: bool, columns: list = COLUMNS) -> BatchEncoder:
    cfg = StageSinkConfig.model_validate({"type": "stage", "url": "file:///tmp/x/",
                                          "columns": columns, "format": fmt,
                                          "native_encoding": native})
    return BatchEncoder("st", cfg, SinkStats())


def batch(records: list[dict]) -> list[Lines]:
    raws = [orjson.dumps(r) for r in records]
    return [Lines.of(raws[:150]), Lines.of(raws[150:])]


def file() -> StagedFile:
    return StagedFile(None, "part-00001.parquet", 0.0)  # type: ignore[arg-type]


def want(i: int, iso: bool) -> tuple:
    s = ["x,y", None, None, "q\"uote\r\nline", "7"][i % 5]
    at = f"2024-02-29T09:00:0{i % 10}.500Z" if iso else 1709197200500000 + i % 10 * 1000000
    return (i, at, orjson.dumps({"k": [i, None]}).decode(), s)


@pytest.mark.parametrize("native", [True, False])
async def test_ndjson_rows_are_typed_objects(native: bool) -> None:
    enc = encoder("ndjson", native)
    try:
        encoded = await enc.encode(batch(RECORDS), file())
    finally:
        enc.close()
    assert encoded.rejected == [(200, "column n: not an integer")]
    rows = [orjson.loads(line) for line in encoded.rows.splitlines()]
    assert [(r["n"], r["at"], orjson.dumps(r["j"]).decode(), r["s"]) for r in rows] == \
        [want(i, True) for i in range(200)]
    assert all(list(r) == ["n", "at", "j", "s"] for r in rows)


@pytest.mark.parametrize(("native", "columns"), [(True, COLUMNS), (False, COLUMNS),
                                                 (True, ["s"])])
async def test_parquet_batches_are_held_and_written_at_finish(native: bool, columns: list,
                                                             tmp_path) -> None:
    enc = encoder("parquet", native, columns)
    staged = file()
    try:
        first = await enc.encode(batch(RECORDS), staged)
        second = await enc.encode(batch(RECORDS[:10]), staged)
        footer = await enc.finish(staged)
    finally:
        enc.close()
    assert staged.parquet is None
    # the rows are held for a row group of 122,880: `finish` writes them, then the footer
    assert first.rows == b"PAR1" and second.rows == b""
    assert footer[-4:] == b"PAR1"
    data = first.rows + second.rows + footer
    path = tmp_path / "f.parquet"
    path.write_bytes(data)
    con = duckdb.connect()
    groups = con.execute(f"SELECT DISTINCT row_group_id, row_group_num_rows "
                         f"FROM parquet_metadata('{path}') ORDER BY 1").fetchall()
    assert groups == [(0, 211 if columns == ["s"] else 210)]
    if columns == ["s"]:  # one column: never native (an empty CSV line), same rows
        got = con.execute(f"SELECT s FROM '{path}'").fetchall()
        cells = [want(i, True)[3] for i in range(200)] + [None] \
            + [want(i, True)[3] for i in range(10)]  # the record without `n` has no `s`
        assert got == [(cell,) for cell in cells]
        return
    got = con.execute(f"SELECT n, epoch_us(\"at\"), j, s FROM '{path}'").fetchall()
    assert got == [want(i, False) for i in [*range(200), *range(10)]]
    assert os.path.getsize(path) == len(data)


async def test_a_dropped_parquet_file_gets_no_footer() -> None:
    enc = encoder("parquet", True)
    staged = file()
    try:
        await enc.encode(batch(RECORDS), staged)
        enc.drop(staged)
        assert staged.parquet is None and await enc.finish(staged) == b""
        again = await enc.encode(batch(RECORDS[:10]), staged)  # a new file
        assert again.rows[:4] == b"PAR1"
    finally:
        enc.close()


@pytest.mark.parametrize("native", [True, False])
async def test_a_parquet_file_of_no_rows_is_whole_at_finish(native: bool, tmp_path) -> None:
    enc = encoder("parquet", native)
    staged = file()
    try:
        rejected = await enc.encode(batch([{"n": "n/a"}] * 100), staged)
        data = rejected.rows + await enc.finish(staged)
    finally:
        enc.close()
    assert rejected.rejected == [(i, "column n: not an integer") for i in range(100)]
    path = tmp_path / "f.parquet"
    path.write_bytes(data)
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM '{path}'").fetchone() == (0,)
    assert con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                       f"'{path}')").fetchall() == \
        [("n", "BIGINT"), ("at", "TIMESTAMP WITH TIME ZONE"), ("j", "VARCHAR"), ("s", "VARCHAR")]


async def test_a_batch_refused_after_its_query_is_in_the_file_once(monkeypatch,
                                                                    tmp_path) -> None:
    """A check that fails after the native query ran (rows and rejects disagreeing)
    leaves its rows out of the file: the per-record encoder's rows are the only ones."""
    enc = encoder("parquet", True)
    native = enc._native
    inserted = native.encode

    def refuse_after(parts, target=None):
        inserted(parts, target)
        raise NativeEncodeError("rows and rejects disagree")

    monkeypatch.setattr(native, "encode", refuse_after)
    staged = file()
    try:
        encoded = await enc.encode(batch(RECORDS), staged)
        data = encoded.rows + await enc.finish(staged)
    finally:
        enc.close()
    assert encoded.rejected == [(200, "column n: not an integer")]
    path = tmp_path / "f.parquet"
    path.write_bytes(data)
    got = duckdb.connect().execute(f"SELECT n, epoch_us(\"at\"), j, s FROM '{path}'").fetchall()
    assert got == [want(i, False) for i in range(200)]
