"""Configs for tests: TOML snippets that add up to a `streamer.toml` (a top part, then
sources and sinks), and config data as `parse_config` takes it.

In every builder a keyword set to None leaves its key out, so the default applies."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from streamer.config.root import ConfigError, parse_config
from streamer.sinks.td.config import TdSinkConfig
from tests.fixtures.kafka import CONSUMER_TIMING, KafkaBroker
from tests.helpers.records import BENCH_COLUMNS, COLUMNS

AWS_REGION = "us-east-1"
TD_SINK_KEY = "1/abc+def/ghi="
TD_RETRY = MappingProxyType({"initial_backoff_ms": 5, "max_backoff_ms": 100})


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return orjson.dumps(str(value)).decode()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


def toml_keys(**keys: Any) -> str:
    """`key = value` lines, one a key that is not None."""
    return "".join(f"{key} = {toml_value(value)}\n" for key, value in keys.items()
                   if value is not None)


def base_config(tmp: Path, *, data: str = "data", api: str = "", instance_id: str = "0",
                checkpoint_interval_s: float | None = 0.5,
                api_settings: dict[str, Any] | None = None, **settings: Any) -> str:
    """The top of a config: data_dir (tmp/data), top-level settings (checkpoints every
    0.5 s), and [api] with `listen` ("" turns the API off)."""
    top = {"instance_id": instance_id, "checkpoint_interval_s": checkpoint_interval_s,
           "shutdown_timeout_s": 30, **settings}
    return (toml_keys(data_dir=f"{tmp}/{data}", **top)
            + "[api]\n" + toml_keys(listen=api, **(api_settings or {})))


def file_source(paths: Path | str | list[Path], *, name: str = "events",
                follow: bool | None = True, poll_interval_ms: int | None = 50,
                extra: str = "") -> str:
    """A file source reading `paths` (files or globs)."""
    paths = paths if isinstance(paths, list) else [paths]
    return (f"[sources.{name}]\n"
            + toml_keys(type="file", paths=paths, follow=follow,
                        poll_interval_ms=poll_interval_ms) + f"{extra}\n")


def socket_source(name: str, framing: str, *, port: int = 0, extra: str = "") -> str:
    """A socket source on 127.0.0.1 (port 0: a free one, see `sockets.start`)."""
    return (f"[sources.{name}]\n"
            + toml_keys(type="socket", listen=f"127.0.0.1:{port}", framing=framing)
            + f"{extra}\n")


def kafka_source(broker: KafkaBroker, group: str, extra: str = "", topic: str = "events") -> str:
    """A Kafka source `kafka` reading `topic` with the fixture's fast group timing."""
    return ("[sources.kafka]\n"
            + toml_keys(type="kafka", bootstrap_servers=broker.bootstrap, topics=[topic],
                        group_id=group, **CONSUMER_TIMING) + f"{extra}\n")


def stage_sink(tmp: Path, *, name: str = "stage", url: str | None = None,
               columns: list[str] = COLUMNS, max_file_age_s: float | None = 0.5,
               fsync: bool | None = False, inputs: list[str] | None = None,
               extra: str = "") -> str:
    """A stage sink writing to `url` (by default the local directory tmp/<name>), that
    closes (and so acknowledges) files every 0.5 s."""
    return (f"[sinks.{name}]\n"
            + toml_keys(type="stage", url=url or f"file://{tmp}/{name}/", columns=columns,
                        max_file_age_s=max_file_age_s, fsync=fsync, inputs=inputs)
            + f"{extra}\n")


def td_sink(endpoint: str, *, api: str | None = "postback", name: str = "td",
            timeout_s: float | None = 5, retry: Mapping[str, float] | None = TD_RETRY,
            database: str = "test_db", table: str = "events",
            write_key: str | None = "${TD_WRITE_KEY}", extra: str = "") -> str:
    """A td sink posting to `endpoint` (by default with the key in $TD_WRITE_KEY)."""
    return (f"[sinks.{name}]\n"
            + toml_keys(type="td", api=api, endpoint=endpoint, database=database, table=table,
                        write_key=write_key, timeout_s=timeout_s, retry=retry)
            + f"{extra}\n")


def s3_stage_config(tmp_path: Path, *, paths: list[Path], bucket: str, s3_endpoint: str,
                    prefix: str = "stage/", follow: bool = False, sink: str = "",
                    s3: str = "", load: str = "", api: str = "",
                    name: str = "streamer.toml") -> Path:
    """A file source `f` -> s3:// stage `st` config (bench.gen columns); `sink`, `s3`,
    `load` are extra TOML lines for [sinks.st], [sinks.st.s3] and [sinks.st.load]."""
    text = (base_config(tmp_path, api=api, checkpoint_interval_s=None)
            + file_source(paths, name="f", follow=follow)
            + stage_sink(tmp_path, name="st", url=f"s3://{bucket}/{prefix}",
                         columns=BENCH_COLUMNS, max_file_age_s=None, fsync=None,
                         extra=toml_keys(batch={"max_records": 2000, "linger_ms": 100}) + sink)
            + "[sinks.st.s3]\n" + toml_keys(endpoint_url=s3_endpoint, region=AWS_REGION)
            + f"{s3}\n")
    if load:
        text += f"[sinks.st.load]\n{load}\n"
    path = tmp_path / name
    path.write_text(text)
    return path


def config_data(*, sources: dict[str, Any] | None = None, sinks: dict[str, Any] | None = None,
                **top: Any) -> dict[str, Any]:
    """A config as `parse_config` takes it: a file source `logs` and a local stage sink
    `stage` unless other sources or sinks are given."""
    return {"data_dir": "/tmp/x",
            "sources": sources or {"logs": {"type": "file", "paths": ["/var/log/*.ndjson"]}},
            "sinks": sinks or {"stage": {"type": "stage", "url": "file:///tmp/stage/",
                                         "columns": ["a", "b"]}},
            **top}


def config_problems(data: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    """The problems `parse_config` refuses `data` with (one line each)."""
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ or {})
    return info.value.problems


def td_sink_model(**overrides: Any) -> TdSinkConfig:
    """A td sink config as the sink gets it (key TD_SINK_KEY), with `overrides`."""
    data = {"type": "td", "database": "my_db", "table": "events", "write_key": TD_SINK_KEY}
    return TdSinkConfig.model_validate({**data, **overrides})
