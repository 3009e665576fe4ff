"""`streamer check` output: the resolved topology and effective settings."""

from __future__ import annotations

import os

from streamer.aws.check import aws_load_check_lines, s3_stage_check_lines
from streamer.config.root import Config
from streamer.datadir.layout import DataDir
from streamer.loaders.config import DuckDBLoad
from streamer.observability.progress import finite_run
from streamer.sinks.stage.formats import compression_of
from streamer.sinks.td.check import td_check_lines
from streamer.sinks.td.config import TdSinkConfig
from streamer.sources.file.config import FileSourceConfig
from streamer.sources.kafka.config import KafkaSourceConfig
from streamer.sources.socket.config import SocketSourceConfig


def api_off_reason(cfg: Config) -> str:
    if finite_run(cfg):
        return "disabled (a finite run: on only where [api] listen is set)"
    return "disabled"


def delivery_line(cfg: Config, sink: str, exactly_once: bool, max_open_files: int) -> str:
    """A stage sink's guarantee, and the inputs that cannot have it (no replay)."""
    if not exactly_once:
        return "    delivery: at-least-once"
    plain = [f"{name} ({cfg.sources[name].type})" for name in cfg.sink_inputs(sink)
             if not isinstance(cfg.sources[name], FileSourceConfig | KafkaSourceConfig)]
    kafka = any(isinstance(cfg.sources[name], KafkaSourceConfig)
                for name in cfg.sink_inputs(sink))
    return (f"    delivery: exactly_once max_open_files={max_open_files}"
            + (f"; at-least-once from {', '.join(plain)}: no replay" if plain else "")
            + ("; kafka: partitions handed over through the ledger in the stage"
               if kafka else ""))


def data_dir_line(data_dir: str) -> str:
    if os.path.isabs(data_dir):
        return data_dir
    return f"{os.path.abspath(data_dir)} (relative: {data_dir}, from the working directory)"


def give_up_line(cfg: Config) -> str:
    bound = cfg.oneshot_give_up_s
    if not finite_run(cfg):
        why = "not used: a daemon retries for ever"
    elif bound:
        why = "a one-shot run: it stops once a sink has had no success this long"
    else:
        why = "a one-shot run: retries until killed"
    return f"oneshot_give_up_s: {bound:g} ({why})"


def check_report(cfg: Config, path: str) -> str:
    lines = [f"config OK: {path}", f"data_dir: {data_dir_line(cfg.data_dir)}",
             f"instance_id: {cfg.instance_id}",
             f"api: {cfg.api.listen or api_off_reason(cfg)}",
             f"shutdown_timeout_s: {cfg.shutdown_timeout_s:g}", f"workers: {cfg.workers}",
             f"checkpoint_interval_s: {cfg.checkpoint_interval_s:g}",
             give_up_line(cfg), "sources:"]
    for name, src in cfg.sources.items():
        outputs = ", ".join(cfg.source_outputs(name)) or "(no sink)"
        detail = ""
        if isinstance(src, FileSourceConfig):
            detail = (f" paths={src.paths} follow={str(src.follow).lower()} "
                      f"read_from={src.read_from}")
        elif isinstance(src, SocketSourceConfig):
            detail = (f" listen={src.listen} framing={src.framing} "
                      f"ack={str(src.ack).lower()} max_connections={src.max_connections} "
                      f"idle_timeout_s={src.idle_timeout_s:g} "
                      f"first_record_timeout_s={src.first_record_timeout_s:g} "
                      f"max_buffered_bytes={src.max_buffered_bytes} "
                      f"tls={'on' if src.tls else 'off'}")
        elif isinstance(src, KafkaSourceConfig):
            topics = (f"topics={','.join(src.topics)}" if src.topics
                      else f"topic_pattern={src.topic_pattern}")
            detail = (f" bootstrap_servers={','.join(src.bootstrap_servers)} {topics} "
                      f"group_id={src.group_id} start_from={src.start_from} "
                      f"isolation_level={src.isolation_level} "
                      f"security_protocol={src.security_protocol} "
                      f"max_in_flight_batches={src.max_in_flight_batches}")
        limit = (f"max_frame_bytes={src.max_frame_bytes}" if isinstance(src, SocketSourceConfig)
                 else f"max_line_bytes={src.max_line_bytes}")
        lines.append(f"  {name} ({src.type}){detail} {limit} -> {outputs}")
    lines.append("sinks:")
    for name, sink in cfg.sinks.items():
        inputs = ", ".join(cfg.sink_inputs(name))
        lines.append(f"  {name} ({sink.type}) <- {inputs}")
        b, q = sink.batch, sink.buffer
        lines.append(f"    batch: max_records={b.max_records} max_bytes={b.max_bytes} "
                     f"linger_ms={b.linger_ms}")
        lines.append(f"    buffer: max_batches={q.max_batches} when_full={q.when_full}")
        if isinstance(sink, TdSinkConfig):
            lines.extend(td_check_lines(sink))
            continue
        lines.append(f"    url: {sink.url} columns={len(sink.columns)} format={sink.format} "
                     f"files: max_records={sink.max_file_records} "
                     f"max_bytes={sink.max_file_bytes} max_age_s={sink.max_file_age_s:g}")
        lines.append(f"    windows: files={sink.window_files} bytes={sink.window_bytes} "
                     f"age_s={sink.window_age_s:g}")
        lines.append(delivery_line(cfg, name, sink.exactly_once, sink.max_open_files))
        lines.extend(s3_stage_check_lines(
            sink.url, sink.s3, compression_of(sink.format, sink.compression), sink.gzip_level))
        load = sink.load
        if isinstance(load, DuckDBLoad):
            lines.append(f"    load: duckdb {load.path or DataDir(cfg.data_path).duckdb} "
                         f"table={load.table}"
                         + (" (staged files deleted once loaded)" if load.delete_staged else ""))
        elif load.type != "none":
            lines.extend(aws_load_check_lines(load, sink.url, sink.s3.region))
        else:
            lines.append("    load: none")
    return "\n".join(lines)
