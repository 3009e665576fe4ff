"""Config model of the socket source (`type = "socket"`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    PositiveInt,
    PrivateAttr,
    field_validator,
    model_validator,
)

from streamer.config.base import Model
from streamer.config.file_digest import files_digest


class TlsConfig(Model):
    cert: str  # PEM certificate chain
    key: str  # PEM private key
    _files_digest: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _digest(self) -> TlsConfig:
        """A certificate renewed in place: a reload rebuilds the source with it."""
        self._files_digest = files_digest((self.cert, self.key))
        return self


class SocketSourceConfig(Model):
    type: Literal["socket"]
    listen: str  # HOST:PORT (port 0: any free port, logged at start)
    framing: Literal["newline", "length_prefixed"] = "newline"
    max_frame_bytes: PositiveInt = 1024 * 1024
    max_connections: PositiveInt = 256
    # a connection that completes no line or frame for this long is closed (0: never)
    idle_timeout_s: Annotated[float, Field(ge=0)] = 300.0
    # a connection (TLS: its handshake included) that completes no first line or frame
    # this long after it was accepted is closed, even if bytes trickle in (0: only
    # idle_timeout_s applies): idle connections must not hold max_connections for long
    first_record_timeout_s: Annotated[float, Field(ge=0)] = 0.0
    # bytes read ahead per connection before reading pauses (TCP pushes back)
    read_buffer_bytes: PositiveInt = 256 * 1024
    # bytes held across all connections before they stop being read (TCP pushes back)
    max_buffered_bytes: PositiveInt = 64 * 1024 * 1024
    # length_prefixed only: write back a 4-byte count of acknowledged frames
    ack: bool = False
    tls: TlsConfig | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("must be HOST:PORT")
        return value

    @model_validator(mode="after")
    def _ack_framing(self) -> SocketSourceConfig:
        if self.ack and self.framing != "length_prefixed":
            raise ValueError("ack = true needs framing = \"length_prefixed\"")
        return self
