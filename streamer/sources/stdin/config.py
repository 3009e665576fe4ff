"""Config model of the stdin source (`type = "stdin"`)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    PositiveInt,
)

from streamer.config.base import Model


class StdinSourceConfig(Model):
    type: Literal["stdin"]
    max_line_bytes: PositiveInt = 1024 * 1024
    read_bytes: PositiveInt = 1024 * 1024
