"""Config model of the stage sink (`type = "stage"`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from streamer.aws.config import S3Options, check_stage_url, stage_problems
from streamer.config.base import Model, SinkCommon
from streamer.loaders.config import DuckDBLoad, LoadConfig, NoLoad
from streamer.mapping.spec import ColumnSpec
from streamer.mapping.types import mapping_problems
from streamer.sinks.stage.formats import compression_of, compression_problem


class CsvOptions(Model):
    separator: Annotated[str, Field(min_length=1, max_length=1)] = ","
    quote: Annotated[str, Field(min_length=1, max_length=1)] = '"'
    null_value: str = ""


class StageSinkConfig(SinkCommon):
    type: Literal["stage"]
    url: str
    # a field name (its value as it is) or a mapping table (mapping/spec.py)
    columns: Annotated[list[ColumnSpec], Field(min_length=1)]
    csv: CsvOptions = CsvOptions()
    max_file_records: PositiveInt = 1_000_000
    max_file_bytes: PositiveInt = 256 * 1024 * 1024
    max_file_age_s: PositiveFloat = 60.0
    window_files: PositiveInt = 16
    window_bytes: PositiveInt = 1024 * 1024 * 1024
    window_age_s: PositiveFloat = 300.0
    fsync: bool = True
    # one file per replayable stream, journaled before its acks: no duplicates
    # across crashes (docs/guarantees.md "Delivery guarantee"); at most max_open_files open
    exactly_once: bool = False
    max_open_files: PositiveInt = 64
    # encode batches to CSV in DuckDB (same rows; falls back per record)
    native_encoding: bool = True
    load: LoadConfig = NoLoad(type="none")
    # s3:// stages: how S3 is reached
    s3: S3Options = S3Options()
    # the files' format and compression (formats.py); unset: none, snappy for Parquet
    format: Literal["csv", "ndjson", "parquet"] = "csv"
    compression: Literal["none", "gzip", "zstd", "snappy"] | None = None
    gzip_level: Annotated[int, Field(ge=1, le=9)] = 1

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_stage_url(value)

    @field_validator("columns")
    @classmethod
    def _unique(cls, value: list[ColumnSpec]) -> list[ColumnSpec]:
        names = [c.name for c in value]
        dupes = sorted({c for c in names if names.count(c) > 1})
        if dupes:
            raise ValueError(f"duplicate columns: {', '.join(dupes)}")
        return value

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @model_validator(mode="after")
    def _load_columns(self) -> StageSinkConfig:
        if isinstance(self.load, DuckDBLoad):
            unknown = sorted(set(self.load.column_types) - set(self.column_names))
            if unknown:
                raise ValueError(f"load.column_types names columns not in columns: "
                                 f"{', '.join(unknown)}")
            by_case: dict[str, list[str]] = {}
            for name in self.column_names:
                by_case.setdefault(name.casefold(), []).append(name)
            for names in by_case.values():
                if len(names) > 1:
                    raise ValueError(f"columns: {' and '.join(sorted(names))} are one column "
                                     "in DuckDB (names are case-insensitive): rename one")
            broken = [n for n in self.column_names if "\n" in n or "\r" in n]
            if broken and self.format == "csv":
                raise ValueError(f"columns: {broken[0]!r} holds a line break, which DuckDB "
                                 "cannot read in a CSV header: name the column otherwise "
                                 "(a mapping's `name`, with `from` naming the field)")
        problems = [p for p in [compression_problem(self.format, self.compression)] if p]
        problems += stage_problems(self.url, self.column_names, self.csv.separator,
                                   self.csv.quote, self.format,
                                   compression_of(self.format, self.compression), self.load)
        problems += mapping_problems(self.columns, self.load)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def directory(self) -> Path:
        return Path(urlparse(self.url).path)
