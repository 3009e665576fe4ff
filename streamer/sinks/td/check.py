"""`streamer check` lines of a TD sink, and its `check --connect` probe."""

from __future__ import annotations

from streamer.config.connect import Probe
from streamer.sinks.td.config import TdSinkConfig


def td_check_lines(cfg: TdSinkConfig) -> list[str]:
    """Lines for `streamer check`; the key is never printed, only where it comes from."""
    key = f"file {cfg.write_key_file}" if cfg.write_key_file else "set (hidden)"
    retry = cfg.retry
    routing = f" table_field={cfg.table_field}" if cfg.table_field else ""
    return [
        f"    td: api={cfg.api} endpoint={cfg.base_url} database={cfg.database} "
        f"table={cfg.table}{routing}" + (f" proxy={proxy}" if (proxy := cfg.proxy()) else ""),
        f"    auth={cfg.auth} write_key: {key} concurrency={cfg.concurrency} "
        f"timeout_s={cfg.timeout_s:g}",
        f"    retry: initial_backoff_ms={retry.initial_backoff_ms} "
        f"max_backoff_ms={retry.max_backoff_ms} max_elapsed_s={retry.max_elapsed_s:g}"
        + (" (until shutdown)" if not retry.max_elapsed_s else ""),
    ]


def td_probe(cfg: TdSinkConfig) -> Probe:
    return lambda: td_key_accepted(cfg)


# a body the API reads past its key check and then refuses, so nothing is written:
# postback takes one JSON object per request, ingest 1 to 500 events
_NO_RECORD = {"postback": b"[]", "ingest": b'{"events":[]}'}


async def td_key_accepted(cfg: TdSinkConfig) -> tuple[bool, str]:
    """One request that cannot write a record: 401/403 means the key is refused;
    400 (the empty body refused after the key was checked) or 2xx means TD took
    the key.  The postback API may check a key only after answering."""
    from streamer.sinks.td.http_client import HttpClient
    from streamer.sinks.td.requests import Targets

    targets = Targets(cfg, cfg.secret_key())
    client = HttpClient(targets.origin, targets.headers, timeout_s=cfg.timeout_s,
                        proxy=targets.proxy)
    try:
        target = targets.get(cfg.table)
        response = await client.post(client.head(target.request_target), _NO_RECORD[cfg.api])
    finally:
        client.close()
    where = f"{targets.origin}{target.path}"
    if response.status in (401, 403):
        return False, f"TD refused the write key (HTTP {response.status}) at {where}"
    if response.status == 400 or 200 <= response.status < 300:
        return True, f"{where} reachable, key accepted (HTTP {response.status}, nothing written)"
    return False, f"HTTP {response.status} from {where}"
