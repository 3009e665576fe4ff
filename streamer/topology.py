"""`streamer check` output: the resolved topology and effective settings."""

from __future__ import annotations

from streamer.config import Config, DuckDBLoad, FileSourceConfig


def describe(cfg: Config, path: str) -> str:
    lines = [f"config OK: {path}", f"data_dir: {cfg.data_dir}",
             f"instance_id: {cfg.instance_id}",
             f"api: {cfg.api.listen or 'disabled'}",
             f"shutdown_timeout_s: {cfg.shutdown_timeout_s:g}", "sources:"]
    for name, src in cfg.sources.items():
        outputs = ", ".join(cfg.source_outputs(name)) or "(no sink)"
        detail = ""
        if isinstance(src, FileSourceConfig):
            detail = (f" paths={src.paths} follow={str(src.follow).lower()} "
                      f"read_from={src.read_from}")
        lines.append(f"  {name} ({src.type}){detail} max_line_bytes={src.max_line_bytes} "
                     f"-> {outputs}")
    lines.append("sinks:")
    for name, sink in cfg.sinks.items():
        inputs = ", ".join(cfg.sink_inputs(name))
        lines.append(f"  {name} ({sink.type}) <- {inputs}")
        b, q = sink.batch, sink.buffer
        lines.append(f"    batch: max_records={b.max_records} max_bytes={b.max_bytes} "
                     f"linger_ms={b.linger_ms}")
        lines.append(f"    buffer: max_batches={q.max_batches} when_full={q.when_full}")
        lines.append(f"    url: {sink.url} columns={len(sink.columns)} "
                     f"files: max_records={sink.max_file_records} "
                     f"max_bytes={sink.max_file_bytes} max_age_s={sink.max_file_age_s:g}")
        lines.append(f"    windows: files={sink.window_files} bytes={sink.window_bytes} "
                     f"age_s={sink.window_age_s:g}")
        load = sink.load
        if isinstance(load, DuckDBLoad):
            lines.append(f"    load: duckdb {load.path or cfg.data_dir + '/streamer.duckdb'} "
                         f"table={load.table}")
        else:
            lines.append("    load: none")
    return "\n".join(lines)
