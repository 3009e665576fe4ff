"""`streamer check` lines of a TD sink."""

from __future__ import annotations

from streamer.sinks.td.config import TdSinkConfig


def td_check_lines(cfg: TdSinkConfig) -> list[str]:
    """Lines for `streamer check`; the key is never printed, only where it comes from."""
    key = f"file {cfg.write_key_file}" if cfg.write_key_file else "set (hidden)"
    retry = cfg.retry
    routing = f" table_field={cfg.table_field}" if cfg.table_field else ""
    return [
        f"    td: api={cfg.api} endpoint={cfg.base_url} database={cfg.database} "
        f"table={cfg.table}{routing}",
        f"    auth={cfg.auth} write_key: {key} concurrency={cfg.concurrency} "
        f"timeout_s={cfg.timeout_s:g}",
        f"    retry: initial_backoff_ms={retry.initial_backoff_ms} "
        f"max_backoff_ms={retry.max_backoff_ms} max_elapsed_s={retry.max_elapsed_s:g}"
        + (" (until shutdown)" if not retry.max_elapsed_s else ""),
    ]
