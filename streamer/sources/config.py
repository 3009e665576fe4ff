"""`[sources.NAME]`: one of the sources' config models, chosen by `type`."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
)

from streamer.sources.file.config import FileSourceConfig
from streamer.sources.kafka.config import KafkaSourceConfig
from streamer.sources.socket.config import SocketSourceConfig
from streamer.sources.stdin.config import StdinSourceConfig

SourceConfig = Annotated[
    FileSourceConfig | StdinSourceConfig | SocketSourceConfig | KafkaSourceConfig,
    Field(discriminator="type")]
