"""NDJSON and Parquet batches through both encoders (BatchEncoder): the same typed rows
whether DuckDB's query or the per-record encoder made the cells; a Parquet file's rows
held until `finish` writes it whole."""

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
async def test_parquet_rows_wait_for_finish(native: bool, columns: list, tmp_path) -> None:
    enc = encoder("parquet", native, columns)
    staged = file()
    try:
        first = await enc.encode(batch(RECORDS), staged)
        second = await enc.encode(batch(RECORDS[:10]), staged)
        data = await enc.finish(staged)
    finally:
        enc.close()
    assert first.rows == second.rows == b"" and staged.table is None
    assert data[:4] == data[-4:] == b"PAR1"
    path = tmp_path / "f.parquet"
    path.write_bytes(data)
    con = duckdb.connect()
    if columns == ["s"]:  # one column: never native (an empty CSV line), same rows
        got = con.execute(f"SELECT s FROM '{path}'").fetchall()
        cells = [want(i, True)[3] for i in range(200)] + [None] \
            + [want(i, True)[3] for i in range(10)]  # the record without `n` has no `s`
        assert got == [(cell,) for cell in cells]
        return
    got = con.execute(f"SELECT n, epoch_us(\"at\"), j, s FROM '{path}'").fetchall()
    assert got == [want(i, False) for i in [*range(200), *range(10)]]
    assert os.path.getsize(path) == len(data)


async def test_a_dropped_parquet_file_leaves_no_table() -> None:
    enc = encoder("parquet", True)
    staged = file()
    try:
        await enc.encode(batch(RECORDS), staged)
        table = staged.table
        enc.drop(staged)
        assert staged.table is None and await enc.finish(staged) == b""
        with pytest.raises(duckdb.CatalogException):
            enc._native.run(f"SELECT * FROM {table}")
    finally:
        enc.close()


async def test_a_batch_refused_after_its_insert_is_in_the_file_once(monkeypatch,
                                                                     tmp_path) -> None:
    """A check that fails after the native INSERT ran (rows and rejects disagreeing)
    rolls the INSERT back: the per-record encoder's rows are the only ones."""
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
        data = await enc.finish(staged)
    finally:
        enc.close()
    assert encoded.rejected == [(200, "column n: not an integer")]
    path = tmp_path / "f.parquet"
    path.write_bytes(data)
    got = duckdb.connect().execute(f"SELECT n, epoch_us(\"at\"), j, s FROM '{path}'").fetchall()
    assert got == [want(i, False) for i in range(200)]
