"""Config of the socket source: defaults and validation."""

from __future__ import annotations

from typing import Any

import pytest

from streamer.config.root import ConfigError, parse_config
from streamer.sources.socket.config import SocketSourceConfig


def config(source: dict[str, Any]) -> dict[str, Any]:
    return {"data_dir": "/tmp/x", "sources": {"in": source},
            "sinks": {"out": {"type": "stage", "url": "file:///tmp/x/stage/",
                              "columns": ["id"]}}}


def problems(source: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(config(source), {})
    return exc.value.problems


def test_socket_defaults() -> None:
    src = parse_config(config({"type": "socket", "listen": "0.0.0.0:9000"}), {}).sources["in"]
    assert isinstance(src, SocketSourceConfig)
    assert (src.framing, src.max_frame_bytes, src.max_connections, src.idle_timeout_s,
            src.read_buffer_bytes, src.ack, src.tls) == (
        "newline", 1 << 20, 256, 300.0, 256 * 1024, False, None)


def test_socket_validation() -> None:
    assert problems({"type": "socket", "listen": "9000"}) == [
        "sources.in.listen: must be HOST:PORT"]
    assert problems({"type": "socket", "listen": "h:70000"}) == [
        "sources.in.listen: must be HOST:PORT"]
    assert problems({"type": "socket", "listen": "h:1", "ack": True}) == [
        'sources.in: ack = true needs framing = "length_prefixed"']
    assert problems({"type": "socket", "listen": "h:1", "framing": "json"})[0].startswith(
        "sources.in.framing:")
    assert problems({"type": "socket", "listen": "h:1", "tls": {"cert": "c"}}) == [
        "sources.in.tls.key: Field required"]
