"""Turns a batch's records into a stage file's bytes: natively (DuckDB, off the
event loop) when it pays, per record (`csv_python.CsvEncoder`) otherwise.

CSV is the encoders' own output.  NDJSON and Parquet (`typed.py`) take the same
cells typed to another DuckDB target; a Parquet file's rows wait in a DuckDB
table until `finish` writes the whole file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import orjson

from streamer.core.lines import Lines
from streamer.observability.metrics import SinkStats
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.csv_native import (
    MIN_RECORDS,
    Encoded,
    NativeCsvEncoder,
    NativeEncodeError,
    native_available,
)
from streamer.sinks.stage.csv_python import CsvEncoder, is_plain
from streamer.sinks.stage.formats import parquet_codec
from streamer.sinks.stage.store.local import StagedFile
from streamer.sinks.stage.typed import Target, TypedOutput

log = logging.getLogger("streamer.sink.stage")

T = TypeVar("T")


class BatchEncoder:
    def __init__(self, name: str, cfg: StageSinkConfig, stats: SinkStats) -> None:
        self._name = name
        self._stats = stats
        self._format = cfg.format
        if cfg.format == "csv":
            options = {"separator": cfg.csv.separator, "quote": cfg.csv.quote,
                       "null_value": cfg.csv.null_value}
        else:  # cells for typed.py: nulls and empty strings alike are empty
            options = {"separator": ",", "quote": '"', "null_value": ""}
        self._python = CsvEncoder(cfg.columns, **options)
        self._natively = self.encodes_natively(cfg)
        self._native = (NativeCsvEncoder(cfg.columns, **options)
                        if self._natively or cfg.format != "csv" else None)
        # DuckDB's work always on the same thread: glibc gives each thread that
        # allocates its own arena, and an arena keeps the freed high-water mark
        # of the queries run on it; asyncio.to_thread's pool may spread them over
        # several threads, each arena then holding one
        self._thread = (ThreadPoolExecutor(1, thread_name_prefix=f"stage-{name}-encode")
                        if self._native is not None else None)
        self._typed: TypedOutput | None = None
        if cfg.format != "csv":
            assert self._native is not None
            self._typed = TypedOutput(cfg.columns, cfg.format, self._native.output_path,
                                      parquet_codec(cfg.compression))

    @staticmethod
    def encodes_natively(cfg: StageSinkConfig) -> bool:
        return cfg.native_encoding and native_available(cfg.columns)

    def header(self) -> bytes:
        return self._python.header() if self._format == "csv" else b""

    async def encode(self, segments: list[Lines], file: StagedFile) -> Encoded:
        """The file's bytes for records given as their lines (pieces or parts of
        them; none for Parquet until `finish`), and the records a column mapping
        could not convert (index over the segments)."""
        target = self._target(file)
        records = sum(segment.count for segment in segments)
        if self._natively and records >= MIN_RECORDS:
            try:
                # DuckDB releases the GIL: the sources go on decoding meanwhile
                return await self._in_thread(self._encode_natively, segments, target,
                                             file.table is not None)
            except NativeEncodeError as exc:
                self._stats.count("native_encode_fallbacks")
                log.debug("stage sink %s: native encoding refused a batch (%s); "
                          "encoding it per record", self._name, exc)
        rows = self._python.encode(
            (list(map(orjson.loads, segment.raws)), is_plain(segment.raws))
            for segment in segments)
        rejected = self._python.rejected
        if target is not None and rows:
            target = self._typed.target(file.table, from_csv=True)
            statement = f"{target.head}{self._typed.from_csv(self._native.input_path)}" \
                        f"{target.tail}"
            rows = await self._in_thread(self._native.run, statement, rows)
        return Encoded(rows, rejected)

    async def _in_thread(self, func: Callable[..., T], *args: object) -> T:
        assert self._thread is not None
        return await asyncio.get_running_loop().run_in_executor(self._thread, func, *args)

    def _encode_natively(self, segments: list[Lines], target: Target | None,
                         inserts: bool) -> Encoded:
        """A batch refused after its INSERT (a check after the query) must leave no
        rows in the file's table: the per-record encoder writes them instead."""
        if not inserts:
            return self._native.encode(segments, target)
        self._native.run("BEGIN TRANSACTION")
        try:
            encoded = self._native.encode(segments, target)
        except BaseException:
            self._native.run("ROLLBACK")
            raise
        self._native.run("COMMIT")
        return encoded

    def _target(self, file: StagedFile) -> Target | None:
        if self._typed is None:
            return None
        if self._format == "parquet" and file.table is None:
            file.table, create = self._typed.new_table()
            self._native.run(create)
        return self._typed.target(file.table)

    async def finish(self, file: StagedFile) -> bytes:
        """The rest of a file's bytes before it completes: a Parquet file whole."""
        if file.table is None:
            return b""
        table, file.table = file.table, None
        data = await self._in_thread(self._native.run, self._typed.write_table(table))
        self._native.run(f"DROP TABLE {table}")
        return data

    def drop(self, file: StagedFile) -> None:
        """A file abandoned before it completes: its held rows go."""
        if file.table is not None:
            self._native.run(f"DROP TABLE {file.table}")
            file.table = None

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown()  # a query still running ends before its connection
        if self._native is not None:
            self._native.close()
