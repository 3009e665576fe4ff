"""`${VAR}` and `${VAR:-default}` expansion over a parsed config."""

from __future__ import annotations

import re
from typing import Any

# `$$`; a reference, whose default may hold references of its own; any other `${`
_ENV_REF = re.compile(r"\$\$"
                      r"|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:\$\{[^}]*\}|\$(?!\{)|[^}$])*))?\}"
                      r"|\$\{")
NOT_A_REFERENCE = "a `${` that is not ${VAR} or ${VAR:-default} (write $$ for a literal $)"


def expand_env(value: Any, environ: dict[str, str], path: str,
               problems: list[str]) -> Any:
    """Expand ${VAR} and ${VAR:-default} in every string; $$ is a literal $.
    As in the shell, `:-` takes the default for a variable unset or empty."""
    if isinstance(value, str):
        def substitute(match: re.Match) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name is None:
                if NOT_A_REFERENCE not in problems_here:
                    problems_here.append(NOT_A_REFERENCE)
                return match.group(0)
            if environ.get(name) or (name in environ and default is None):
                return environ[name]
            if default is not None:
                return _ENV_REF.sub(substitute, default)
            problems_here.append(f"environment variable {name} is not set")
            return ""
        problems_here: list[str] = []
        expanded = _ENV_REF.sub(substitute, value)
        problems.extend(f"{path}: {problem}" for problem in problems_here)
        return expanded
    if isinstance(value, dict):
        return {k: expand_env(v, environ, f"{path}.{k}" if path else k, problems)
                for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value
