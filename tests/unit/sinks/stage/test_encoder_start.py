"""The native encoder's DuckDB connection is made in the encoder's own thread, so
the process goes on starting meanwhile; its first query runs after it, and a
connection that cannot be made fails the first batch loudly."""

from __future__ import annotations

import asyncio
import threading

import duckdb
import orjson
import pytest

from streamer.core.lines import Lines
from streamer.observability.metrics import SinkStats
from streamer.sinks.stage import csv_native
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.encoding import BatchEncoder
from streamer.sinks.stage.store.local import StagedFile

FILE = StagedFile(None, "part-00001.csv", 0.0)  # type: ignore[arg-type]
pytestmark = pytest.mark.skipif(not csv_native.native_available(["a", "b"]),
                                reason="no memfd")


def config(tmp_path, fmt: str = "csv") -> StageSinkConfig:
    return StageSinkConfig(type="stage", url=f"file://{tmp_path}", columns=["a", "b"],
                           format=fmt)


def lines(n: int) -> list[Lines]:
    return [Lines.of([orjson.dumps({"a": i, "b": f"x{i}"}) for i in range(n)])]


async def test_connection_is_made_in_the_encoder_thread_before_its_first_query(
        tmp_path, monkeypatch):
    connected_in = []
    connect = duckdb.connect

    def spy(*args, **kwargs):
        connected_in.append(threading.current_thread().name)
        return connect(*args, **kwargs)

    monkeypatch.setattr(csv_native.duckdb, "connect", spy)
    encoder = BatchEncoder("s", config(tmp_path), SinkStats())
    try:
        encoded = await encoder.encode(lines(100), file=FILE)
    finally:
        encoder.close()
    assert connected_in == ["encoder-s_0"]
    assert encoded.rows == b"".join(f"{i},x{i}\r\n".encode() for i in range(100))


async def test_parquet_and_ndjson_connect_at_once(tmp_path, monkeypatch):
    connected_in = []
    connect = duckdb.connect
    monkeypatch.setattr(csv_native.duckdb, "connect", lambda *a, **k: (
        connected_in.append(threading.current_thread().name), connect(*a, **k))[1])
    BatchEncoder("s", config(tmp_path, "ndjson"), SinkStats()).close()
    assert connected_in == [threading.current_thread().name]  # its output path is needed


async def test_a_connection_that_fails_fails_the_first_batch(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise duckdb.IOException("no DuckDB today")

    monkeypatch.setattr(csv_native.duckdb, "connect", refuse)
    encoder = BatchEncoder("s", config(tmp_path), SinkStats())
    with pytest.raises(duckdb.IOException, match="no DuckDB today"):
        await asyncio.wait_for(encoder.encode(lines(100), file=FILE), 30)
    encoder.close()  # nothing to close: no error of its own
