"""The config of one mapped column: a `columns` entry of the stage sink (and the
TD sink's `mapping`).  A plain string names a top-level field whose value is
copied as it is (type "raw"); a table names a path, a type and conversions."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from streamer.config.base import Model
from streamer.mapping.paths import Path, key_path, parse_path
from streamer.mapping.timestamps import EPOCH_UNITS, OUTPUT_FORMATS, text_pattern

ColumnType = Literal["raw", "string", "integer", "double", "boolean", "json", "timestamp"]
# names users may know from SQL, taken as ours
TYPE_ALIASES = {"varchar": "string", "text": "string", "str": "string",
                "bigint": "integer", "int": "integer", "int64": "integer",
                "float": "double", "float64": "double", "number": "double",
                "bool": "boolean", "ts": "timestamp"}
Scalar = str | bool | int | float


class ColumnSpec(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Annotated[str, Field(min_length=1)]
    # a path into the record (paths.py); default: the top-level field `name`
    from_: Annotated[str | None, Field(alias="from")] = None
    type: ColumnType = "string"
    # timestamps: how the input is read, and how the column is written
    parse: str = "iso8601"
    format: Literal["iso8601", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns"] = "iso8601"
    # a constant instead of a value of the record (after ${VAR} expansion)
    value: Scalar | None = None
    # used in place of a missing value (absent or null), converted like one
    default: Scalar | None = None
    # a missing value dead-letters the record instead of leaving the cell empty
    required: bool = False

    @model_validator(mode="before")
    @classmethod
    def _plain_name(cls, data: Any) -> Any:
        if isinstance(data, str):  # today's column: the field's value as it is
            return {"name": data, "from": key_path(data), "type": "raw"}
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            kind = data["type"].lower()
            data = {**data, "type": TYPE_ALIASES.get(kind, kind)}
        return data

    @field_validator("from_")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            parse_path(value)
        return value

    @field_validator("parse")
    @classmethod
    def _parse(cls, value: str) -> str:
        if value not in EPOCH_UNITS:
            text_pattern(value)
        return value

    @field_validator("value", "default")
    @classmethod
    def _converts(cls, value: Scalar | None, info: ValidationInfo) -> Scalar | None:
        """A constant or default that does not convert would fail every record."""
        from streamer.mapping.values import constant_problem

        known = info.data
        if value is None or not {"type", "parse", "format"} <= known.keys():
            return value
        problem = constant_problem(SimpleNamespace(**known), value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.value is not None and self.from_ is not None:
            raise ValueError("set from or value, not both")
        if self.value is not None and (self.default is not None or self.required):
            raise ValueError("a value column has no default or required")
        if self.type != "timestamp":
            for key in ("parse", "format"):
                if key in self.model_fields_set:
                    raise ValueError(f"{key} is for type = \"timestamp\" only")
        assert self.format in OUTPUT_FORMATS
        return self

    @property
    def steps(self) -> Path:
        return parse_path(self.from_ if self.from_ is not None else key_path(self.name))


    @property
    def plain(self) -> bool:
        """Today's column: the top-level field `name` as it is, nothing else."""
        return (self.type == "raw" and self.value is None and self.default is None
                and not self.required and self.steps == (self.name,))


def all_plain(columns: list[ColumnSpec]) -> bool:
    return all(c.plain for c in columns)
