"""Config models of the sinks (`[sinks.NAME]`) and their loaders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)

from streamer.aws.config import (
    DataExchangeLoad,
    S3Options,
    TimestreamLoad,
    check_stage_url,
    stage_problems,
)
from streamer.config.base import BatchConfig, BufferConfig, Model


class CsvOptions(Model):
    separator: Annotated[str, Field(min_length=1, max_length=1)] = ","
    quote: Annotated[str, Field(min_length=1, max_length=1)] = '"'
    null_value: str = ""


class NoLoad(Model):
    type: Literal["none"]


class DuckDBLoad(Model):
    type: Literal["duckdb"]
    path: str = ""  # default: <data_dir>/streamer.duckdb
    table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    # column -> DuckDB type; columns not listed are VARCHAR
    column_types: dict[str, str] = {}

    @field_validator("column_types")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        """A misspelt type would fail every window at load time: refuse it now."""
        bad = unknown_duckdb_types(value)
        if bad:
            raise ValueError(f"not DuckDB types: {', '.join(bad)}")
        return value


def unknown_duckdb_types(types: dict[str, str]) -> list[str]:
    """`column = 'TYPE'` for each type DuckDB cannot cast NULL to."""
    if not types:
        return []
    import duckdb  # only configs with a DuckDB loader pay for the import

    con = duckdb.connect()
    try:
        bad = []
        for column, kind in types.items():
            try:
                con.execute(f"SELECT CAST(NULL AS {kind})")
            except duckdb.Error:
                bad.append(f"{column} = {kind!r}")
        return bad
    finally:
        con.close()


LoadConfig = Annotated[NoLoad | DuckDBLoad | TimestreamLoad | DataExchangeLoad,
                       Field(discriminator="type")]


class SinkCommon(Model):
    inputs: list[str] | None = None  # None: every source
    batch: BatchConfig = BatchConfig()
    buffer: BufferConfig = BufferConfig()


class StageSinkConfig(SinkCommon):
    type: Literal["stage"]
    url: str
    columns: Annotated[list[str], Field(min_length=1)]
    csv: CsvOptions = CsvOptions()
    max_file_records: PositiveInt = 1_000_000
    max_file_bytes: PositiveInt = 256 * 1024 * 1024
    max_file_age_s: PositiveFloat = 60.0
    window_files: PositiveInt = 16
    window_bytes: PositiveInt = 1024 * 1024 * 1024
    window_age_s: PositiveFloat = 300.0
    fsync: bool = True
    # encode batches to CSV in DuckDB (same rows; falls back per record)
    native_encoding: bool = True
    load: LoadConfig = NoLoad(type="none")
    # s3:// stages: how S3 is reached, and the objects' compression
    s3: S3Options = S3Options()
    compression: Literal["none", "gzip"] = "none"
    gzip_level: Annotated[int, Field(ge=1, le=9)] = 1

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_stage_url(value)

    @field_validator("columns")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        dupes = sorted({c for c in value if value.count(c) > 1})
        if dupes:
            raise ValueError(f"duplicate columns: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _load_columns(self) -> StageSinkConfig:
        if isinstance(self.load, DuckDBLoad):
            unknown = sorted(set(self.load.column_types) - set(self.columns))
            if unknown:
                raise ValueError(f"load.column_types names columns not in columns: "
                                 f"{', '.join(unknown)}")
        problems = stage_problems(self.url, self.columns, self.csv.separator, self.csv.quote,
                                  self.compression, self.load)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def directory(self) -> Path:
        return Path(urlparse(self.url).path)


TD_NAME_PATTERN = r"^[a-z0-9_]{3,255}$"
TD_REGIONS = ("us01", "eu01", "ap01", "ap02", "ap03")


class TdRetryConfig(Model):
    initial_backoff_ms: PositiveInt = 100
    max_backoff_ms: PositiveInt = 10_000
    # give up (dead-letter) after this long; 0 = retry until shutdown
    max_elapsed_s: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _order(self) -> TdRetryConfig:
        if self.max_backoff_ms < self.initial_backoff_ms:
            raise ValueError("max_backoff_ms must be >= initial_backoff_ms")
        return self


class TdSinkConfig(SinkCommon):
    type: Literal["td"]
    api: Literal["postback", "ingest"] = "postback"
    # "" = the api's default host; a region (us01, eu01, ...) or an http(s) URL
    endpoint: str = ""
    database: Annotated[str, Field(pattern=TD_NAME_PATTERN)]
    table: Annotated[str, Field(pattern=TD_NAME_PATTERN)]
    table_field: Annotated[str, Field(min_length=1)] | None = None
    write_key: SecretStr | None = None
    write_key_file: str | None = None
    auth: Literal["header", "query"] = "header"
    concurrency: Annotated[int, Field(ge=1, le=4096)] = 64
    timeout_s: PositiveFloat = 30.0
    retry: TdRetryConfig = TdRetryConfig()

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value and value not in TD_REGIONS:
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.hostname \
                    or parsed.query or parsed.fragment:
                raise ValueError(f"must be a region ({', '.join(TD_REGIONS)}) or an "
                                 "http(s)://host[:port] URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _key_and_auth(self) -> TdSinkConfig:
        if (self.write_key is None) == (self.write_key_file is None):
            raise ValueError("set exactly one of write_key or write_key_file")
        try:
            key = self.secret_key()
        except OSError as exc:
            raise ValueError(f"write_key_file: cannot read {self.write_key_file} "
                             f"({exc.strerror})") from None
        source = "write_key" if self.write_key is not None else "write_key_file"
        if not key:
            raise ValueError(f"{source} is empty")
        if not key.isascii() or not key.isprintable() or " " in key:
            # the message never quotes the key
            raise ValueError(f"{source} must be printable ASCII without spaces")
        if self.auth == "query" and (self.api == "ingest" or self.endpoint in TD_REGIONS):
            raise ValueError('auth = "query" works only with the postback API on its '
                             "classic host; use auth = \"header\"")
        return self

    @property
    def base_url(self) -> str:
        if self.endpoint in TD_REGIONS:
            return f"https://{self.endpoint}.records.in.treasuredata.com"
        if self.endpoint:
            return self.endpoint
        return ("https://in.treasuredata.com" if self.api == "postback"
                else "https://us01.records.in.treasuredata.com")

    def secret_key(self) -> str:
        """The write key; never log or print it."""
        if self.write_key is not None:
            return self.write_key.get_secret_value().strip()
        return Path(self.write_key_file or "").read_text().strip()


SinkConfig = Annotated[StageSinkConfig | TdSinkConfig, Field(discriminator="type")]


