"""A record's mapped values in Python, one record at a time: the per-record CSV
encoder's cells and the TD sink's fields.  `sql.py` gives the same cells and
reasons in DuckDB; docs/configuration.md "Column mapping" states the rules."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from streamer.core.json_dumps import dumps
from streamer.mapping.paths import Path, show_path
from streamer.mapping.spec import ColumnSpec
from streamer.mapping.timestamps import EPOCH_UNITS, TextParser, epoch_ns, render

INT64_MIN, INT64_END = -(2 ** 63), 2 ** 63
INTEGER_TEXT = re.compile(r"[+-]?[0-9]+").fullmatch
DOUBLE_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?").fullmatch
NOT_SCALAR = "not a scalar (type json takes objects and arrays)"


class Bad(Exception):
    """A value that cannot be converted: why."""


def _raw(value: Any) -> Any:
    return value


def _string(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return repr(value)
    raise Bad(NOT_SCALAR)


def _integer(value: Any) -> int:
    kind = type(value)
    if kind is int:
        if INT64_MIN <= value < INT64_END:
            return value
        raise Bad("integer out of range")
    if kind is float:
        if not value.is_integer():
            raise Bad("not an integer")
        if INT64_MIN <= value < INT64_END:
            return int(value)
        raise Bad("integer out of range")
    if kind is str and INTEGER_TEXT(value):
        number = int(value)
        if INT64_MIN <= number < INT64_END:
            return number
        raise Bad("integer out of range")
    raise Bad("not an integer")


def _double(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return float(value)
    if kind is str and DOUBLE_TEXT(value):
        number = float(value)
        if math.isfinite(number):
            return number
        raise Bad("double out of range")
    raise Bad("not a number")


def _boolean(value: Any) -> bool:
    if type(value) is bool:
        return value
    if value == "true" or value == "false":
        return value == "true"
    raise Bad("not a boolean")


def _timestamp(spec: ColumnSpec) -> Callable[[Any], int | str]:
    output = spec.format
    if spec.parse in EPOCH_UNITS:
        unit = EPOCH_UNITS[spec.parse]

        def from_epoch(value: Any) -> int | str:
            kind = type(value)
            if kind is int:
                text = str(value)
            elif kind is float:
                text = repr(value)
            elif kind is str:
                text = value
            else:
                raise Bad("not an epoch number")
            ns = epoch_ns(text, unit)
            if type(ns) is str:
                raise Bad(ns)
            return render(ns, output)
        return from_epoch
    parser = TextParser(spec.parse)

    def from_text(value: Any) -> int | str:
        if type(value) is not str:
            raise Bad("timestamp is not a string")
        ns = parser(value)
        if type(ns) is str:
            raise Bad(ns)
        return render(ns, output)
    return from_text


def converter(spec: ColumnSpec) -> Callable[[Any], Any]:
    """value (not None) -> the column's typed value, or Bad."""
    if spec.type == "timestamp":
        return _timestamp(spec)
    return {"raw": _raw, "string": _string, "integer": _integer, "double": _double,
            "boolean": _boolean, "json": _raw}[spec.type]


def text(value: Any) -> str:
    """A typed value as CSV cell text (JSON text for objects and arrays)."""
    try:
        return _string(value)
    except Bad:
        return dumps(value).decode()


def json_text(value: Any) -> str:
    return dumps(value).decode()


class _Missing:
    pass


MISSING = _Missing()


def walk(record: Any, steps: Path) -> Any:
    """The value at `steps`: None when missing (absent or null), Bad for a path
    through a value of the wrong kind."""
    current = record
    for depth, step in enumerate(steps):
        if current is None:
            return None
        if type(step) is int:
            if type(current) is not list:
                raise Bad(f"path through a non-array at {show_path(steps[:depth])}")
            current = current[step] if step < len(current) else None
        else:
            if type(current) is not dict:
                raise Bad(f"path through a non-object at {show_path(steps[:depth])}")
            current = current.get(step)
    return current


def constant_problem(spec: ColumnSpec, value: Any) -> str | None:
    try:
        converter(spec)(value)
    except Bad as exc:
        return str(exc)
    return None


class RecordMapper:
    """Columns of records: typed values (`values`) or CSV cell texts (`cells`);
    a record with a value that cannot be converted raises Bad("column NAME: why")."""

    def __init__(self, columns: Sequence[ColumnSpec]) -> None:
        self.names = tuple(c.name for c in columns)
        self._plan = []
        for spec in columns:
            convert = converter(spec)
            fixed = spec.value if spec.value is not None else spec.default
            fixed = None if fixed is None else convert(fixed)
            render_text = json_text if spec.type == "json" else text
            self._plan.append((spec.name, spec.steps, convert, spec.value is not None, fixed,
                               spec.required, render_text))

    def values(self, record: dict[str, Any]) -> list[Any]:
        out = []
        for name, steps, convert, constant, fixed, required, _ in self._plan:
            if constant:
                out.append(fixed)
                continue
            try:
                value = walk(record, steps)
                if value is None:
                    if required:
                        raise Bad("missing value")
                    out.append(fixed)
                else:
                    out.append(convert(value))
            except Bad as exc:
                raise Bad(f"column {name}: {exc}") from None
        return out

    def cells(self, record: dict[str, Any], null_value: str) -> list[str]:
        out = []
        for (*_, render_text), value in zip(self._plan, self.values(record), strict=True):
            out.append(null_value if value is None else render_text(value))
        return out
