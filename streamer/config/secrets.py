"""The secrets a config holds: their values (to redact from logs) and where they
are stored (for `streamer check`'s warnings about readable files)."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

from streamer.config.root import Config
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.td.config import TdSinkConfig
from streamer.sources.kafka.config import KafkaSourceConfig

# ${VAR} without a default: the value comes from the environment, not the file
_ENV_ONLY = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_SOURCE_SECRETS = ("sasl_plain_password", "ssl_password")
_S3_SECRETS = ("access_key_id", "secret_access_key", "session_token")


def secret_values(cfg: Config) -> list[str]:
    """Every secret value of the config (TD write keys, AWS secret keys and session
    tokens, Kafka passwords).  An unreadable write_key_file yields nothing."""
    values: list[str] = []
    for sink in cfg.sinks.values():
        if isinstance(sink, TdSinkConfig):
            with contextlib.suppress(OSError):
                values.append(sink.secret_key())
        elif isinstance(sink, StageSinkConfig):
            for secret in (sink.s3.secret_access_key, sink.s3.session_token):
                if secret is not None:
                    values.append(secret.get_secret_value())
    for src in cfg.sources.values():
        if isinstance(src, KafkaSourceConfig):
            for secret in (src.sasl_plain_password, src.ssl_password):
                if secret is not None:
                    values.append(secret.get_secret_value())
    return [v for v in values if v]


def _inline(value: Any) -> bool:
    """A secret written in the file: anything but ${VAR} references (a
    ${VAR:-default} default is written in the file too)."""
    return isinstance(value, str) and bool(_ENV_ONLY.sub("", value))


def inline_secret_keys(raw: dict[str, Any]) -> list[str]:
    """Key paths of the secrets written inline in the raw (unexpanded) TOML."""
    keys = []
    for name, src in (raw.get("sources") or {}).items():
        if isinstance(src, dict):
            keys += [f"sources.{name}.{k}" for k in _SOURCE_SECRETS if _inline(src.get(k))]
    for name, sink in (raw.get("sinks") or {}).items():
        if not isinstance(sink, dict):
            continue
        if _inline(sink.get("write_key")):
            keys.append(f"sinks.{name}.write_key")
        s3 = sink.get("s3")
        if isinstance(s3, dict):
            keys += [f"sinks.{name}.s3.{k}" for k in _S3_SECRETS if _inline(s3.get(k))]
    return keys


def _open_mode(path: Path) -> int | None:
    """The permission bits when group or others may read or write the file."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None


def permission_warnings(path: str | Path, cfg: Config) -> list[str]:
    """One line per file holding a secret that group/others can access; the
    lines name keys and files, never a secret."""
    warnings = []
    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    inline = inline_secret_keys(raw)
    mode = _open_mode(Path(path)) if inline else None
    if mode is not None:
        warnings.append(f"warning: {path} holds secrets inline ({', '.join(inline)}) and is "
                        f"readable by group/others (mode {mode:04o}); chmod 600 it or use "
                        "${ENV} references")
    for name, sink in cfg.sinks.items():
        if isinstance(sink, TdSinkConfig) and sink.write_key_file:
            mode = _open_mode(Path(sink.write_key_file))
            if mode is not None:
                warnings.append(f"warning: sinks.{name}.write_key_file {sink.write_key_file} "
                                f"is readable by group/others (mode {mode:04o}); chmod 600 it")
    return warnings
