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
    ValidationError,
    field_validator,
    model_validator,
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


SourceConfig = Annotated[FileSourceConfig | StdinSourceConfig, Field(discriminator="type")]


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


LoadConfig = Annotated[NoLoad | DuckDBLoad, Field(discriminator="type")]


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

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme != "file" or not parsed.path:
            raise ValueError("must be a file:///absolute/dir/ url (s3:// staging is not "
                             "available in this version)")
        return value

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
        return self

    @property
    def directory(self) -> Path:
        return Path(urlparse(self.url).path)


SinkConfig = Annotated[StageSinkConfig, Field(discriminator="type")]


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
