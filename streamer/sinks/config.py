"""`[sinks.NAME]`: one of the sinks' config models, chosen by `type`."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
)

from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.td.config import TdSinkConfig

SinkConfig = Annotated[StageSinkConfig | TdSinkConfig, Field(discriminator="type")]
