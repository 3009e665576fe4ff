"""Relative paths in a config.

They are taken from the working directory (as documented), which a service
manager chooses (systemd: `/`), so they are never taken silently: `check` lists
each with the absolute path it means, and `run` logs the same at start -- a
WARNING, because the same config means other files from another directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from streamer.config.root import Config

# fields naming a local file or directory, wherever they appear in the config
PATH_FIELDS = frozenset({"data_dir", "paths", "path", "cert", "key", "write_key_file",
                         "ssl_cafile", "ssl_certfile", "ssl_keyfile"})


def relative_paths(cfg: Config) -> list[tuple[str, str]]:
    """(key, value) of every path in `cfg` that is relative."""
    found = []
    for key, value in _paths(cfg, ""):
        if value and not os.path.isabs(value):
            found.append((key, value))
    return found


def _paths(model: BaseModel, prefix: str) -> Iterator[tuple[str, str]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            yield from _paths(value, f"{key}.")
        elif isinstance(value, dict):
            for child, item in value.items():
                if isinstance(item, BaseModel):
                    yield from _paths(item, f"{key}.{child}.")
        elif name in PATH_FIELDS:
            yield from ((key, item) for item in _strings(value))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def relative_path_lines(cfg: Config) -> list[str]:
    """One line per relative path: its key, its value and the absolute path it means."""
    cwd = os.getcwd()
    return [f'{key} "{value}" is relative to the working directory {cwd}: '
            f"{os.path.normpath(os.path.join(cwd, value))}"
            for key, value in relative_paths(cfg)]
