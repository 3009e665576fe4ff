"""Turns a batch's records into a stage file's bytes: natively (DuckDB, off the
event loop) when it pays, per record (`csv_python.CsvEncoder`) otherwise.

CSV is the encoders' own output.  NDJSON and Parquet (`typed.py`) take the same
cells typed to another DuckDB target; a Parquet batch's typed rows are fetched as
an Arrow table and given to the open file's writer (`parquet.py`), which holds
them until they make a row group; `finish` writes what it holds and the footer."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from streamer.sinks.stage.parquet import ParquetFileWriter

log = logging.getLogger("streamer.sink.stage")
# DuckDB's Python client takes the GIL back between the steps of a query (about ten
# for 20,000 records), each time waiting for the thread that holds it: up to the
# switch interval (5 ms by default) while the event loop's thread runs Python.  At
# 0.5 ms a query sleeps 20-45% less (bench/encoder_gil.py); a hand-off costs microseconds
GIL_SWITCH_INTERVAL_S = 0.0005


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
        # a thread of its own: DuckDB's allocator keeps memory per thread, and
        # asyncio's shared pool would hand a query to whichever thread is idle
        self._thread = (None if self._native is None else
                        ThreadPoolExecutor(1, thread_name_prefix=f"encoder-{name}"))
        if self._native is not None and sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # the process's, for good
        self._typed: TypedOutput | None = None
        self._parquet_files = None
        if cfg.format != "csv":
            assert self._native is not None
            self._typed = TypedOutput(cfg.columns, cfg.format, self._native.output_path)
        if cfg.format == "parquet":
            from streamer.sinks.stage.parquet import ParquetFiles  # pyarrow: only when used

            self._parquet_files = ParquetFiles(self._typed.types,
                                               parquet_codec(cfg.compression),
                                               cfg.max_file_bytes)

    @staticmethod
    def encodes_natively(cfg: StageSinkConfig) -> bool:
        return cfg.native_encoding and native_available(cfg.columns)

    def header(self) -> bytes:
        return self._python.header() if self._format == "csv" else b""

    @property
    def starts_early(self) -> bool:
        """Whether `start` can run a batch's query before the file it goes to is
        known: native, and no Parquet writer (one per file) to hand the rows to."""
        return self._natively and self._parquet_files is None

    def start(self, segments: list[Lines]) -> asyncio.Future | None:
        """The native query of these records submitted to the encoder's thread now
        (not at the next turn of the event loop); None when they are encoded
        otherwise.  `encode(segments, file, started)` finishes it."""
        if not self.starts_early or sum(s.count for s in segments) < MIN_RECORDS:
            return None
        target = self._typed.target() if self._typed is not None else None
        return self._in_thread(self._encode_natively, segments, target, None)

    async def encode(self, segments: list[Lines], file: StagedFile,
                     started: asyncio.Future | None = None) -> Encoded:
        """The file's bytes for records given as their lines (pieces or parts of
        them), and the records a column mapping could not convert (index over the
        segments); `started`: `start(segments)`'s query."""
        target = self._typed.target() if self._typed is not None else None
        writer = self._parquet_writer(file)
        records = sum(segment.count for segment in segments)
        if self._natively and records >= MIN_RECORDS:
            try:
                # DuckDB releases the GIL: the sources go on decoding meanwhile
                if started is None:
                    started = self._in_thread(self._encode_natively, segments, target,
                                              writer)
                return await started
            except NativeEncodeError as exc:
                self._stats.count("native_encode_fallbacks")
                log.debug("stage sink %s: native encoding refused a batch (%s); "
                          "encoding it per record", self._name, exc)
        rows = self._python.encode(
            (list(map(orjson.loads, segment.raws)), is_plain(segment.raws))
            for segment in segments)
        rejected = self._python.rejected
        if target is not None and rows:
            rows = await self._in_thread(self._typed_from_csv, rows, writer)
        return Encoded(rows, rejected)

    def _in_thread(self, call: Callable[..., Any], *args: Any) -> asyncio.Future:
        """`call(*args)` in the native encoder's own thread."""
        return asyncio.get_running_loop().run_in_executor(self._thread, call, *args)

    def _encode_natively(self, segments: list[Lines], target: Target | None,
                         writer: ParquetFileWriter | None) -> Encoded:
        """A batch the native encoder refuses (even after its query ran) writes
        nothing to a Parquet file: its rows reach the writer only once accepted."""
        encoded = self._native.encode(segments, target)
        if writer is not None:
            encoded.rows, encoded.table = writer.write(encoded.table), None
        return encoded

    def _typed_from_csv(self, rows: bytes, writer: ParquetFileWriter | None) -> bytes:
        """The per-record encoder's CSV rows typed as the native query types its
        cells."""
        target = self._typed.target(from_csv=True)
        statement = f"{target.head}{self._typed.from_csv(self._native.input_path)}" \
                    f"{target.tail}"
        if writer is None:
            return self._native.run(statement, rows)
        return writer.write(self._native.fetch(statement, rows))

    def _parquet_writer(self, file: StagedFile) -> ParquetFileWriter | None:
        if self._parquet_files is not None and file.parquet is None:
            file.parquet = self._parquet_files.open()
        return file.parquet

    async def finish(self, file: StagedFile) -> bytes:
        """The rest of a file's bytes before it completes: a Parquet file's footer."""
        if file.parquet is None:
            return b""
        writer, file.parquet = file.parquet, None
        return await self._in_thread(writer.close)

    def drop(self, file: StagedFile) -> None:
        """A file abandoned before it completes: its writer goes, never closed."""
        if file.parquet is not None:
            file.parquet.discard()
            file.parquet = None

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)  # a query still running finishes first
        if self._native is not None:
            self._native.close()
