"""Config of the socket source: defaults and validation."""

from __future__ import annotations

from typing import Any

from streamer.config.root import parse_config
from streamer.sources.socket.config import SocketSourceConfig
from tests.helpers import config_data, config_problems


def config(source: dict[str, Any]) -> dict[str, Any]:
    return config_data(sources={"in": source})


def problems(source: dict[str, Any]) -> list[str]:
    return config_problems(config(source))


def test_socket_defaults() -> None:
    src = parse_config(config({"type": "socket", "listen": "0.0.0.0:9000"}), {}).sources["in"]
    assert isinstance(src, SocketSourceConfig)
    assert (src.framing, src.max_frame_bytes, src.max_connections, src.idle_timeout_s,
            src.first_record_timeout_s, src.read_buffer_bytes, src.ack, src.tls) == (
        "newline", 1 << 20, 256, 300.0, 0.0, 256 * 1024, False, None)


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
    assert problems({"type": "socket", "listen": "h:1", "first_record_timeout_s": -1}) == [
        "sources.in.first_record_timeout_s: Input should be greater than or equal to 0"]
