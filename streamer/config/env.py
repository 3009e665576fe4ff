"""`${VAR}` and `${VAR:-default}` expansion over a parsed config."""

from __future__ import annotations

import re
from typing import Any

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, environ: dict[str, str], path: str,
               problems: list[str]) -> Any:
    """Expand ${VAR} and ${VAR:-default} in every string; $$ is a literal $."""
    if isinstance(value, str):
        def substitute(match: re.Match) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""
        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {k: expand_env(v, environ, f"{path}.{k}" if path else k, problems)
                for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value
