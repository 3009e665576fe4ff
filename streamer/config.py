"""Typed configuration: TOML, ${VAR} / ${VAR:-default} expansion, validation."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from streamer.config_aws import (  # S3 stage + AWS loaders (issue 4)
    DataExchangeLoad,
    S3Options,
    TimestreamLoad,
    check_stage_url,
    stage_problems,
)

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchConfig(Model):
    max_records: PositiveInt = 5000
    max_bytes: PositiveInt = 4 * 1024 * 1024
    linger_ms: Annotated[int, Field(ge=0)] = 1000


class BufferConfig(Model):
    max_batches: PositiveInt = 4
    when_full: Literal["block", "drop_newest"] = "block"


class Defaults(Model):
    batch: BatchConfig = BatchConfig()
    buffer: BufferConfig = BufferConfig()


class ApiConfig(Model):
    listen: str = "127.0.0.1:9108"
    # /health answers 503 once a sink has failed continuously for this long
    unhealthy_after_s: PositiveFloat = 60.0

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value:
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit() or int(port) > 65535:
                raise ValueError("must be HOST:PORT, or an empty string to disable")
        return value


class FileSourceConfig(Model):
    type: Literal["file"]
    paths: Annotated[list[str], Field(min_length=1)]
    follow: bool = True
    read_from: Literal["beginning", "end"] = "beginning"
    max_line_bytes: PositiveInt = 1024 * 1024
    read_bytes: PositiveInt = 1024 * 1024
    poll_interval_ms: PositiveInt = 250
    glob_interval_ms: PositiveInt = 1000
    # a rotated (renamed) file is read on until it has been idle this long
    rotate_wait_s: Annotated[float, Field(ge=0)] = 5.0


class StdinSourceConfig(Model):
    type: Literal["stdin"]
    max_line_bytes: PositiveInt = 1024 * 1024
    read_bytes: PositiveInt = 1024 * 1024


class TlsConfig(Model):
    cert: str  # PEM certificate chain
    key: str  # PEM private key


class SocketSourceConfig(Model):
    type: Literal["socket"]
    listen: str  # HOST:PORT (port 0: any free port, logged at start)
    framing: Literal["newline", "length_prefixed"] = "newline"
    max_frame_bytes: PositiveInt = 1024 * 1024
    max_connections: PositiveInt = 256
    # a connection that sends nothing for this long is closed (0: never)
    idle_timeout_s: Annotated[float, Field(ge=0)] = 300.0
    # bytes read ahead per connection before reading pauses (TCP pushes back)
    read_buffer_bytes: PositiveInt = 256 * 1024
    # length_prefixed only: write back a 4-byte count of acknowledged frames
    ack: bool = False
    tls: TlsConfig | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("must be HOST:PORT")
        return value

    @model_validator(mode="after")
    def _ack_framing(self) -> SocketSourceConfig:
        if self.ack and self.framing != "length_prefixed":
            raise ValueError("ack = true needs framing = \"length_prefixed\"")
        return self


class KafkaSourceConfig(Model):
    type: Literal["kafka"]
    bootstrap_servers: Annotated[list[str], Field(min_length=1)]
    topics: list[str] = []
    topic_pattern: str | None = None
    group_id: Annotated[str, Field(min_length=1)]
    start_from: Literal["earliest", "latest"] = "earliest"
    client_id: str = ""  # default: streamer-<instance_id>
    max_line_bytes: PositiveInt = 1024 * 1024
    max_poll_records: PositiveInt = 5000
    fetch_max_wait_ms: PositiveInt = 500
    max_partition_fetch_bytes: PositiveInt = 1024 * 1024
    # per partition: fetched batches not yet acknowledged by every sink
    max_in_flight_batches: PositiveInt = 8
    session_timeout_ms: PositiveInt = 10_000
    heartbeat_interval_ms: PositiveInt = 3_000
    rebalance_timeout_ms: PositiveInt = 30_000
    max_poll_interval_ms: PositiveInt = 300_000
    commit_timeout_s: PositiveFloat = 10.0
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _servers(cls, value: Any) -> Any:
        if isinstance(value, str):  # "host1:9092,host2:9092"
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("topic_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSourceConfig:
        if bool(self.topics) == bool(self.topic_pattern):
            raise ValueError("set exactly one of topics or topic_pattern")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be below session_timeout_ms")
        if self.security_protocol.startswith("SASL") and not (
                self.sasl_plain_username and self.sasl_plain_password):
            raise ValueError(f"security_protocol {self.security_protocol} needs "
                             "sasl_plain_username and sasl_plain_password")
        ssl_set = [k for k in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password")
                   if getattr(self, k) is not None]
        if ssl_set and not self.security_protocol.endswith("SSL"):
            raise ValueError(f"{', '.join(ssl_set)} need security_protocol SSL or SASL_SSL")
        return self


SourceConfig = Annotated[
    FileSourceConfig | StdinSourceConfig | SocketSourceConfig | KafkaSourceConfig,
    Field(discriminator="type")]


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


class Config(Model):
    data_dir: str
    # names this process's files (stage files, windows) so shards never collide
    instance_id: Annotated[str, Field(pattern=NAME_PATTERN)] = "0"
    shutdown_timeout_s: PositiveFloat = 30.0
    checkpoint_interval_s: PositiveFloat = 1.0
    api: ApiConfig = ApiConfig()
    defaults: Defaults = Defaults()
    sources: Annotated[dict[str, SourceConfig], Field(min_length=1)]
    sinks: Annotated[dict[str, SinkConfig], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        """Per-sink batch/buffer tables override [defaults] key by key."""
        if not isinstance(data, dict):
            return data
        defaults = data.get("defaults") or {}
        sinks = data.get("sinks")
        if isinstance(sinks, dict) and isinstance(defaults, dict):
            merged = {}
            for name, sink in sinks.items():
                if isinstance(sink, dict):
                    sink = dict(sink)
                    for table in ("batch", "buffer"):
                        base = defaults.get(table) or {}
                        own = sink.get(table) or {}
                        if isinstance(base, dict) and isinstance(own, dict):
                            sink[table] = {**base, **own}
                merged[name] = sink
            data = {**data, "sinks": merged}
        return data

    @model_validator(mode="after")
    def _topology(self) -> Config:
        problems = []
        for kind, names in (("sources", self.sources), ("sinks", self.sinks)):
            for name in names:
                if not re.match(NAME_PATTERN, name):
                    problems.append(f"{kind}.{name}: name must match {NAME_PATTERN}")
        for name, sink in self.sinks.items():
            for source in sink.inputs or ():
                if source not in self.sources:
                    problems.append(f"sinks.{name}.inputs: unknown source {source!r}")
        stdin = [n for n, s in self.sources.items() if s.type == "stdin"]
        if len(stdin) > 1:
            problems.append(f"sources: only one stdin source is possible ({', '.join(stdin)})")
        if problems:
            raise ConfigError(problems)
        return self

    def sink_inputs(self, sink: str) -> list[str]:
        return list(self.sinks[sink].inputs or self.sources)

    def source_outputs(self, source: str) -> list[str]:
        return [name for name in self.sinks if source in self.sink_inputs(name)]

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


def expand_env(value: Any, environ: dict[str, str], path: str,
               problems: list[str]) -> Any:
    """Expand ${VAR} and ${VAR:-default} in every string; $$ is a literal $."""
    if isinstance(value, str):
        def substitute(match: re.Match) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""
        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {k: expand_env(v, environ, f"{path}.{k}" if path else k, problems)
                for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def _location(loc: tuple) -> str:
    """pydantic puts a tagged union's tag into the path (sinks.NAME.<type>.key,
    ...load.<type>.key); operators know the key path without it."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if i == 2 and loc[0] in ("sources", "sinks"):
            continue
        if i > 0 and loc[i - 1] == "load" and i < len(loc) - 1:
            continue
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "[")


def _format(error: dict) -> str:
    where = _location(tuple(error["loc"]))
    message = error["msg"]
    if error["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    if error["type"] == "union_tag_invalid":
        tag, expected = error["input"].get("type"), error["ctx"]["expected_tags"]
        message = f"unknown type {tag!r}; expected {expected}"
    return f"{where}: {message}" if where else message


def parse_config(data: dict[str, Any], environ: dict[str, str] | None = None) -> Config:
    problems: list[str] = []
    data = expand_env(data, dict(os.environ) if environ is None else environ, "", problems)
    if problems:
        raise ConfigError(problems)
    try:
        return Config.model_validate(data)
    except ConfigError:
        raise
    except ValidationError as exc:
        nested = [e for e in exc.errors() if isinstance(e.get("ctx", {}).get("error"), ConfigError)]
        lines = [_format(e) for e in exc.errors() if e not in nested]
        for e in nested:
            lines.extend(e["ctx"]["error"].problems)
        raise ConfigError(lines) from None


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: TOML syntax error: {exc}"]) from None
    return parse_config(data, environ)
