"""The key path a config problem line names (`sinks.stage.max_file_records: ...`),
for `--log-format json`, which gives it its own field."""

from __future__ import annotations

import re

# sinks.stage.max_file_records, sources.x.paths[0], data_dir -- then ": "
_KEY = re.compile(r"^([A-Za-z_][\w-]*(?:\[\d+\])*(?:\.[\w-]+(?:\[\d+\])*)*): ")


def problem_fields(problem: str, config_path: str) -> dict[str, str]:
    """`{"key": path}` for a problem about one key, `{"file": config_path}` for one
    about the whole file (missing, not TOML), else nothing."""
    if problem.startswith(f"{config_path}: "):
        return {"file": config_path}
    match = _KEY.match(problem)
    return {"key": match[1]} if match else {}
