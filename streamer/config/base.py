"""Shared pieces of the config models: the base model, errors, batch and buffer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    field_validator,
)

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchConfig(Model):
    max_records: PositiveInt = 5000
    max_bytes: PositiveInt = 4 * 1024 * 1024
    linger_ms: Annotated[int, Field(ge=0)] = 1000


class BufferConfig(Model):
    max_batches: PositiveInt = 4
    when_full: Literal["block", "drop_newest"] = "block"




class SinkCommon(Model):
    """What every sink's config has: which sources feed it, its batches and buffer."""

    inputs: list[str] | None = None  # None: every source
    batch: BatchConfig = BatchConfig()
    buffer: BufferConfig = BufferConfig()

    @field_validator("inputs")
    @classmethod
    def _some_inputs(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("an empty list feeds this sink nothing: name its sources, or "
                             "leave inputs out for every source")
        return value
