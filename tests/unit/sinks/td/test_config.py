"""Config of the Treasure Data sink: what it refuses, the key file."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import TD_SINK_KEY, td_sink_model


@pytest.mark.parametrize(("overrides", "message"), [
    ({"database": "My-DB"}, "String should match pattern"),
    ({"table": "ab"}, "String should match pattern"),
    ({"write_key": None}, "set exactly one of write_key or write_key_file"),
    ({"write_key_file": "/nonexistent/key"}, "set exactly one of write_key or write_key_file"),
    ({"write_key": "  "}, "write_key is empty"),
    ({"write_key": "abc\ndef"}, "write_key must be printable ASCII without spaces"),
    ({"write_key": "abc def"}, "write_key must be printable ASCII without spaces"),
    ({"write_key": "clé"}, "write_key must be printable ASCII without spaces"),
    ({"auth": "query", "api": "ingest"}, 'auth = "query" works only'),
    ({"auth": "query", "endpoint": "ap01"}, 'auth = "query" works only'),
    ({"endpoint": "ftp://x"}, "must be a region"),
    ({"endpoint": "us02"}, "must be a region"),
    # printed by `check` and sent as the Host header (before 2026-12-04 accepted);
    # the config error does not echo it (tests/unit/aws/test_config.py)
    ({"endpoint": "https://admin:Hunter2-pw@td.example.com"}, "no user:password@"),
    # a port urllib cannot read: `check` passed it and the run's sink died with a
    # traceback after the sources had read (before 2026-12-05)
    ({"endpoint": "https://td.example.com:99999"}, "port 99999 is not 1-65535"),
    ({"endpoint": "https://td.example.com:http"}, "port http is not 1-65535"),
    ({"endpoint": "http://td.example.com:0"}, "port 0 is not 1-65535"),
    ({"retry": {"initial_backoff_ms": 500, "max_backoff_ms": 100}},
     "max_backoff_ms must be >= initial_backoff_ms"),
])
def test_config_rejects(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) \
            as info:
        td_sink_model(**overrides)
    assert TD_SINK_KEY not in str(info.value)


def test_config_key_file(tmp_path) -> None:
    path = tmp_path / "key"
    path.write_text(TD_SINK_KEY + "\n")
    cfg = td_sink_model(write_key=None, write_key_file=str(path))
    assert cfg.secret_key() == TD_SINK_KEY
    path.write_text("")
    with pytest.raises(ValueError, match="write_key_file is empty"):
        td_sink_model(write_key=None, write_key_file=str(path))
    with pytest.raises(ValueError, match="cannot read"):
        td_sink_model(write_key=None, write_key_file=str(tmp_path / "missing"))
