"""What the mapping tells the loaders: the destination type of each column, and
the loads a mapping cannot feed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamer.mapping.spec import ColumnSpec

DUCKDB_TYPES = {"integer": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN",
                "json": "JSON", "string": "VARCHAR"}
TIMESTREAM_TYPES = {"integer": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN",
                    "string": "VARCHAR"}
TIME_UNITS = {"epoch_s": "SECONDS", "epoch_ms": "MILLISECONDS",
              "epoch_us": "MICROSECONDS", "epoch_ns": "NANOSECONDS"}


def duckdb_type(spec: ColumnSpec) -> str:
    """The DuckDB column type that holds the mapped cells (raw: VARCHAR)."""
    if spec.type == "timestamp":
        return "TIMESTAMPTZ" if spec.format == "iso8601" else "BIGINT"
    return DUCKDB_TYPES.get(spec.type, "VARCHAR")


def duckdb_types(columns: Sequence[ColumnSpec]) -> dict[str, str]:
    """Types for the DuckDB table of typed (mapped) columns."""
    return {c.name: duckdb_type(c) for c in columns if c.type != "raw"}


def timestream_type(spec: ColumnSpec) -> str | None:
    if spec.type == "timestamp":
        return "BIGINT" if spec.format != "iso8601" else None
    return TIMESTREAM_TYPES.get(spec.type)


def mapping_problems(columns: Sequence[ColumnSpec], load: Any) -> list[str]:
    """A Timestream load's time column and measure types against the mapping."""
    if getattr(load, "type", None) != "timestream":
        return []
    problems = []
    by_name = {c.name: c for c in columns}
    time_spec = by_name.get(load.time_column)
    if (time_spec is not None and time_spec.type == "timestamp"
            and TIME_UNITS.get(time_spec.format) != load.time_unit):
        problems.append(f"load.time_column: column {time_spec.name} is written as "
                        f"{time_spec.format}; time_unit {load.time_unit} needs format = "
                        f"\"{_format_of(load.time_unit)}\"")
    for i, measure in enumerate(load.measures):
        spec = by_name.get(measure.source)
        if measure.type is None and (spec is None or timestream_type(spec) is None):
            problems.append(f"load.measures[{i}].type: needed (column {measure.source} "
                            "has no mapped type that names one)")
    return problems


def _format_of(unit: str) -> str:
    return next(f for f, u in TIME_UNITS.items() if u == unit)
