"""`streamer columns FILE`: a `columns = [...]` block for the records of a sample,
with each field's path (nested objects walked) and the type its values fit."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path as FilePath
from typing import Any

from streamer.core.ndjson import decode_block
from streamer.mapping.paths import Path, show_path
from streamer.mapping.timestamps import TextParser

_ISO = TextParser("iso8601")
BOM = b"\xef\xbb\xbf"
EXACT_IN_A_DOUBLE = 2**53  # integers a double holds exactly: |n| <= 2^53
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]+")


def _kind(value: Any) -> str:
    kind = type(value)
    if kind is bool:
        return "boolean"
    if kind is int:
        return "integer" if -EXACT_IN_A_DOUBLE <= value <= EXACT_IN_A_DOUBLE else "wide integer"
    if kind is float:
        return "double"
    if kind is str:
        return "timestamp" if type(_ISO(value)) is int else "string"
    if kind is dict:
        return "object"
    return "json"  # lists


def _walk(value: dict[str, Any], prefix: Path, kinds: dict[Path, set[str]]) -> None:
    for key, item in value.items():
        path = (*prefix, key)
        seen = kinds.setdefault(path, set())
        if item is None:
            continue
        kind = _kind(item)
        seen.add(kind)
        if kind == "object":
            if item:
                _walk(item, path, kinds)
            else:
                seen.add("json")


def column_type(kinds: set[str]) -> str:
    """The type every value seen fits (nulls aside)."""
    if not kinds:
        return "string"
    if kinds <= {"integer", "wide integer"}:
        return "integer"
    if kinds <= {"integer", "double"}:
        return "double"
    if kinds <= {"integer", "wide integer", "double"}:
        return "string"  # a double would change the wide integers: each number's text
    if kinds in ({"boolean"}, {"timestamp"}):
        return next(iter(kinds))
    if kinds <= {"string", "timestamp"}:
        return "string"
    if "object" in kinds or "json" in kinds:
        return "json"
    return "string"  # scalars of mixed kinds: their text


def infer(records: Iterable[Any]) -> list[dict[str, str]]:
    """Column tables (name, from, type[, parse]) for these records' fields, in the
    order the fields first appear."""
    kinds: dict[Path, set[str]] = {}
    for record in records:
        if isinstance(record, dict):
            _walk(record, (), kinds)
    columns: list[dict[str, str]] = []
    names: set[str] = set()
    whole: list[Path] = []  # objects written as one json column
    for path, seen in kinds.items():
        if any(path[:len(parent)] == parent for parent in whole):
            continue
        if "object" in seen and seen != {"object"}:
            whole.append(path)  # an object in some records, not in others
        elif seen == {"object"}:
            continue  # its fields are columns
        kind = column_type(seen - {"object"} if seen != {"object"} else seen)
        if path in whole:
            kind = "json"
        name = _NAME_CHARS.sub("_", "_".join(path)).strip("_") or "column"
        base, n = name, 2
        while name.casefold() in names:  # DuckDB's names are case-insensitive
            name, n = f"{base}_{n}", n + 1
        names.add(name.casefold())
        column = {"name": name, "from": show_path(path), "type": kind}
        if kind == "timestamp":
            column["parse"] = "iso8601"
        columns.append(column)
    return columns


def sample(path: str, count: int) -> tuple[list[Any], int]:
    """The first `count` records of an NDJSON file, and how many lines the sources
    would dead-letter (not JSON objects, or holding an integer outside the signed
    64-bit range, which no stage column takes): their fields are not inferred."""
    records, bad = [], 0
    with FilePath(path).open("rb") as lines:
        for number, line in enumerate(lines):
            if len(records) >= count:
                break
            if number == 0 and line.startswith(BOM):  # skipped, as the sources do
                line = line[len(BOM):]
            if not line.strip():
                continue
            checked = decode_block(line, 0, max(len(line), 1))  # the sources' line rules
            if checked.bad:
                bad += 1
            else:
                records.extend(checked.records)
    return records, bad


def columns_block(columns: list[dict[str, str]], header: str) -> str:
    """TOML for the stage sink's `columns` (strings as JSON strings: valid TOML)."""
    out = [f"# {header}", "columns = ["]
    for column in columns:
        pairs = ", ".join(f"{key} = {json.dumps(value, ensure_ascii=False)}"
                          for key, value in column.items())
        out.append(f"  {{ {pairs} }},")
    out.append("]")
    return "\n".join(out)
