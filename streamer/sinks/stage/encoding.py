"""Turns a batch's records into CSV bytes: natively (DuckDB, off the event
loop) when it pays, per record (`csv_python.CsvEncoder`) otherwise."""

from __future__ import annotations

import asyncio
import logging

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

log = logging.getLogger("streamer.sink.stage")


class BatchEncoder:
    def __init__(self, name: str, cfg: StageSinkConfig, stats: SinkStats) -> None:
        self._name = name
        self._stats = stats
        options = {"separator": cfg.csv.separator, "quote": cfg.csv.quote,
                   "null_value": cfg.csv.null_value}
        self._python = CsvEncoder(cfg.columns, **options)
        self._native = (NativeCsvEncoder(cfg.columns, **options)
                        if self.encodes_natively(cfg) else None)

    @staticmethod
    def encodes_natively(cfg: StageSinkConfig) -> bool:
        return cfg.native_encoding and native_available(cfg.columns)

    def header(self) -> bytes:
        return self._python.header()

    async def encode(self, segments: list[Lines]) -> Encoded:
        """CSV rows of records given as their lines (pieces or parts of them), and
        the records a column mapping could not convert (index over the segments)."""
        records = sum(segment.count for segment in segments)
        if self._native is not None and records >= MIN_RECORDS:
            try:
                # DuckDB releases the GIL: the sources go on decoding meanwhile
                return await asyncio.to_thread(self._native.encode, segments)
            except NativeEncodeError as exc:
                self._stats.count("native_encode_fallbacks")
                log.debug("stage sink %s: native CSV encoding refused a batch (%s); "
                          "encoding it per record", self._name, exc)
        rows = self._python.encode(
            (list(map(orjson.loads, segment.raws)), is_plain(segment.raws))
            for segment in segments)
        return Encoded(rows, self._python.rejected)

    def close(self) -> None:
        if self._native is not None:
            self._native.close()
