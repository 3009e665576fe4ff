"""TOML configs of the ``streamer run`` processes the benchmarks measure.

A config is one source named ``input`` and one sink: ``config_text(data_dir, source,
sink)`` with the sections built by ``file_source``, ``stage_sink`` or ``td_sink`` (the
live sources build their own source section).  The metrics API is off unless a port is
given (the live driver polls it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.gen import FIELDS

__all__ = ["config_text", "file_source", "stage_sink", "td_sink", "toml_str"]


def toml_str(s: str) -> str:
    """A TOML basic string (a JSON string literal is one)."""
    return json.dumps(s)


def file_source(input_path: Path) -> str:
    """A one-shot file source: read ``input_path`` to its end, then finish."""
    return (
        'type = "file"\n'
        f"paths = [{toml_str(str(input_path))}]\n"
        "follow = false\n"
        'read_from = "beginning"\n'
    )


def stage_sink(
    url: str,
    *,
    max_file_records: int = 1_000_000,
    max_file_age_s: float | None = None,
    s3: Mapping[str, str] | None = None,
    columns: Sequence[str] = FIELDS,
    extra: str = "",
) -> str:
    """A stage sink (local ``file://`` or ``s3://`` url) of every generated column (of the
    default shape unless ``columns``), no load; ``extra``: more TOML lines for it."""
    text = (
        "[sinks.stage]\n"
        'type = "stage"\n'
        f"url = {toml_str(url)}\n"
        f"columns = {json.dumps(list(columns))}\n"
        f"max_file_records = {max_file_records}\n"
    )
    if max_file_age_s is not None:
        text += f"max_file_age_s = {max_file_age_s}\n"
    text += extra
    if s3:
        text += "[sinks.stage.s3]\n" + "".join(f"{k} = {toml_str(v)}\n" for k, v in s3.items())
    return text + '[sinks.stage.load]\ntype = "none"\n'


def td_sink(url: str, api: str, concurrency: int) -> str:
    """A Treasure Data sink (``postback`` or ``ingest``) posting to ``url``."""
    return (
        "[sinks.td]\n"
        'type = "td"\n'
        f"api = {toml_str(api)}\n"
        f"endpoint = {toml_str(url)}\n"
        'database = "bench_db"\n'
        'table = "bench_table"\n'
        'write_key = "bench-key"\n'
        f"concurrency = {concurrency}\n"
    )


def config_text(data_dir: Path, source: str, sink: str, metrics_port: int = 0,
                workers: int = 1) -> str:
    """The whole config: ``source`` is the body of ``[sources.input]``, ``sink`` a section."""
    listen = f"127.0.0.1:{metrics_port}" if metrics_port else ""
    return (
        f"data_dir = {toml_str(str(data_dir))}\n"
        f"workers = {workers}\n"
        f"[api]\nlisten = {toml_str(listen)}\n"
        f"[sources.input]\n{source}"
        f"{sink}"
    )
