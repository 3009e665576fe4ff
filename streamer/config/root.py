"""The whole configuration: TOML read, `${VAR}` expanded, validated with key paths.

Each source's and sink's model sits beside its code (`sources/file/config.py`,
`sinks/stage/config.py`, ...); this module holds the top level that joins them."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PositiveFloat, ValidationError, field_validator, model_validator

from streamer.config.base import (
    NAME_PATTERN,
    BatchConfig,
    BufferConfig,
    ConfigError,
    Model,
)
from streamer.config.env import expand_env
from streamer.loaders.duckdb_memory import memory_problems
from streamer.sinks.config import SinkConfig
from streamer.sources.config import SourceConfig


class Defaults(Model):
    batch: BatchConfig = BatchConfig()
    buffer: BufferConfig = BufferConfig()


def _valid_keys(table: Any, model: type[Model]) -> dict[str, Any]:
    """The keys of a [defaults.*] table that its model takes, to merge into each sink:
    a bad one is reported once, under `defaults.`, not again under every sink."""
    if not isinstance(table, dict):
        return {}
    try:
        model.model_validate(table)
    except ValidationError as exc:
        bad = {error["loc"][0] if error["loc"] else None for error in exc.errors()}
        return {} if None in bad else {k: v for k, v in table.items() if k not in bad}
    return table


DEFAULT_API_LISTEN = "127.0.0.1:9108"


class ApiConfig(Model):
    # a finite run (every source stdin or a file not followed) leaves the API off
    # unless `listen` is set: two one-shot loads at once would fight over the port
    listen: str = DEFAULT_API_LISTEN
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


class Config(Model):
    data_dir: Annotated[str, Field(min_length=1)]
    # names this process's files (stage files, windows) so shards never collide
    instance_id: Annotated[str, Field(pattern=NAME_PATTERN)] = "0"
    shutdown_timeout_s: PositiveFloat = 30.0
    # worker processes, each running the pipeline over its share of the input
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    checkpoint_interval_s: PositiveFloat = 1.0
    # a finite run stops once a sink has failed this long without a success (0: never)
    oneshot_give_up_s: Annotated[float, Field(ge=0)] = 300.0
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
            tables = {"batch": _valid_keys(defaults.get("batch"), BatchConfig),
                      "buffer": _valid_keys(defaults.get("buffer"), BufferConfig)}
            merged = {}
            for name, sink in sinks.items():
                if isinstance(sink, dict):
                    sink = dict(sink)
                    for table, base in tables.items():
                        own = sink.get(table) or {}
                        if isinstance(base, dict) and isinstance(own, dict):
                            sink[table] = {**base, **own}
                merged[name] = sink
            data = {**data, "sinks": merged}
        return data

    @model_validator(mode="before")
    @classmethod
    def _api_off_for_finite_runs(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not finite_sources(data.get("sources")):
            return data
        api = data.get("api", {})
        if isinstance(api, dict) and "listen" not in api:
            data = {**data, "api": {**api, "listen": ""}}
        return data

    @model_validator(mode="after")
    def _topology(self) -> Config:
        problems = topology_problems({
            "sources": {name: {"type": src.type} for name, src in self.sources.items()},
            "sinks": {name: {"inputs": sink.inputs} for name, sink in self.sinks.items()}})
        problems += listen_clashes(self.sources, self.api.listen)
        problems += free_ports_with_workers(self.sources, self.workers)
        problems += memory_problems(self)
        if problems:
            raise ConfigError(problems)
        return self

    def sink_inputs(self, sink: str) -> list[str]:
        return list(self.sinks[sink].inputs or self.sources)

    def longest_input(self, sink: str) -> tuple[str, int]:
        """The source feeding `sink` that takes the longest records, and that length."""
        def longest(name: str) -> int:
            src = self.sources[name]
            return src.max_frame_bytes if src.type == "socket" else src.max_line_bytes

        return max(((name, longest(name)) for name in self.sink_inputs(sink)),
                   key=lambda pair: pair[1], default=("", 0))

    def source_outputs(self, source: str) -> list[str]:
        return [name for name in self.sinks if source in self.sink_inputs(name)]

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def local_stage_dirs(self) -> tuple[Path, ...]:
        """The directories of the stage sinks with a file:// url."""
        return tuple(sink.directory for sink in self.sinks.values()
                     if sink.type == "stage" and sink.url.startswith("file:"))


WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]", "*")


def listen_clashes(sources: dict[str, Any], api_listen: str) -> list[str]:
    """Socket sources that would listen on one address (the same port on the same
    host, or on every host) with another or with the API; port 0 is a free port each."""
    problems: list[str] = []
    seen: list[tuple[str, str, str]] = []  # (host, port, what)
    if api_listen:
        host, _, port = api_listen.rpartition(":")
        seen.append((host, port, "api.listen"))
    for name, src in sources.items():
        if src.type != "socket":
            continue
        host, _, port = src.listen.rpartition(":")
        if port == "0":
            continue
        for other_host, other_port, other in seen:
            if port == other_port and (host == other_host or host in WILDCARD_HOSTS
                                       or other_host in WILDCARD_HOSTS):
                problems.append(f"sources.{name}.listen: {src.listen} is also the listen "
                                "address of " + (other if other == "api.listen"
                                                 else f"source {other}"))
                break
        seen.append((host, port, name))
    return problems


def free_ports_with_workers(sources: dict[str, Any], workers: int) -> list[str]:
    """Workers share a socket source's port (each binds it with SO_REUSEPORT and the
    kernel spreads connections): port 0 would give each worker a free port of its own."""
    if workers == 1:
        return []
    return [f"sources.{name}.listen: {src.listen} with workers = {workers}: each worker "
            "would listen on a free port of its own; give a port number (the workers share "
            "it)" for name, src in sources.items()
            if src.type == "socket" and src.listen.rpartition(":")[2] == "0"]


def finite_sources(sources: Any) -> bool:
    """Every source (as configured, before validation) ends by itself: stdin, or a
    file source with `follow = false`."""
    if not isinstance(sources, dict) or not sources:
        return False
    return all(isinstance(src, dict) and (src.get("type") == "stdin" or (
        src.get("type") == "file" and src.get("follow") is False)) for src in sources.values())


def data_dir_problem(cfg: Config, create: bool) -> str | None:
    """Why data_dir cannot be used (one line naming it), else None.  `check`
    creates nothing: it looks at the nearest existing directory on the way."""
    return directory_problem("data_dir", cfg.data_dir, cfg.data_path, create)


def stage_dir_problems(cfg: Config) -> list[str]:
    """Why local stage directories cannot be used (one line each, naming the
    sink's url); each is created.  Checked by `run` before anything is read."""
    problems = []
    for name, sink in cfg.sinks.items():
        if sink.type == "stage" and sink.url.startswith("file:"):
            problem = directory_problem(f"sinks.{name}.url", str(sink.directory),
                                        sink.directory, create=True)
            if problem is not None:
                problems.append(problem)
    return problems


def directory_problem(key: str, shown: str, directory: Path, create: bool) -> str | None:
    path = directory.absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{key}: cannot create {shown}: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "write to" if existing == path else "create"
        return f"{key}: cannot {verb} {shown}: {existing} is not writable"
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"{key}: cannot create {shown}: {exc.strerror or exc}"
    return None


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


def topology_problems(data: dict[str, Any]) -> list[str]:
    """Names, `inputs` naming no source, stdin twice: judged on the validated config
    and, when fields fail (the model's own check never runs then), on the raw
    tables, so that one pass lists every problem."""
    sources = data.get("sources") if isinstance(data.get("sources"), dict) else {}
    sinks = data.get("sinks") if isinstance(data.get("sinks"), dict) else {}
    problems = []
    for kind, names in (("sources", sources), ("sinks", sinks)):
        for name in names:
            if not re.match(NAME_PATTERN, name):
                problems.append(f"{kind}.{name}: name must match {NAME_PATTERN}")
    for name, sink in sinks.items():
        inputs = sink.get("inputs") if isinstance(sink, dict) else None
        for source in inputs if isinstance(inputs, list) else ():
            if isinstance(source, str) and source not in sources:
                problems.append(f"sinks.{name}.inputs: unknown source {source!r}")
    stdin = [n for n, s in sources.items() if isinstance(s, dict) and s.get("type") == "stdin"]
    if len(stdin) > 1:
        problems.append(f"sources: only one stdin source is possible ({', '.join(stdin)})")
    return problems


def parse_config(data: dict[str, Any], environ: dict[str, str] | None = None) -> Config:
    unset: list[str] = []  # a missing variable is one line; the rest is still validated
    data = expand_env(data, dict(os.environ) if environ is None else environ, "", unset)
    try:
        cfg = Config.model_validate(data)
    except ConfigError as exc:
        raise ConfigError(unset + _not_under(exc.problems, unset)) from None
    except ValidationError as exc:
        nested = [e for e in exc.errors() if isinstance(e.get("ctx", {}).get("error"), ConfigError)]
        lines = [_format(e) for e in exc.errors() if e not in nested]
        for e in nested:
            lines.extend(e["ctx"]["error"].problems)
        # the model's topology check runs only once every field is valid
        lines += [line for line in topology_problems(data) if line not in lines]
        raise ConfigError(unset + _not_under(lines, unset)) from None
    if unset:
        raise ConfigError(unset)
    return cfg


def _not_under(problems: list[str], unset: list[str]) -> list[str]:
    """The problems whose key holds no missing variable (its value, expanded
    without it, is not judged again)."""
    keys = tuple(line.partition(": ")[0] for line in unset)
    return [line for line in problems
            if not any(_same_or_inside(line.partition(": ")[0], key) for key in keys)]


def _same_or_inside(key: str, unset_key: str) -> bool:
    return (key == unset_key or unset_key.startswith((key + ".", key + "["))
            or key.startswith((unset_key + ".", unset_key + "[")))


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as exc:  # a directory, no read permission
        raise ConfigError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 (TOML files are): byte {exc.start}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: TOML syntax error: {exc}"]) from None
    return parse_config(data, environ)
