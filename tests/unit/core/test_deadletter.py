"""Dead-letter entries: one shape for every source and sink."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson

from streamer.core.deadletter import BadInput, DeadLetters, entry


def test_entry_names_origin_and_offset_then_reason_extras_and_raw() -> None:
    item = entry("kafka", "kafka:events/3", BadInput(41, "invalid JSON: x", b"nope"),
                 source="k")
    assert list(item) == ["time", "component", "origin", "offset", "reason", "source", "raw"]
    assert {k: v for k, v in item.items() if k != "time"} == {
        "component": "kafka", "origin": "kafka:events/3", "offset": 41,
        "reason": "invalid JSON: x", "source": "k", "raw": "nope"}


def test_entry_position_inside_a_payload_and_bytes_that_are_not_utf8() -> None:
    item = entry("tcp", "tcp:[::1]:5000", BadInput(8, "invalid JSON", b"\xff\x00", 12))
    assert (item["offset"], item["payload_position"]) == (8, 12)
    assert "raw" not in item and base64.b64decode(item["raw_base64"]) == b"\xff\x00"


def test_written_entries_read_back_line_by_line(tmp_path: Path) -> None:
    letters = DeadLetters(tmp_path / "dead_letter")
    entries = [entry("events", "stdin", BadInput(n, "why", b"x%d" % n)) for n in range(3)]
    letters.write("events", entries[:2])
    letters.write("events", entries[2:])
    letters.close()
    lines = (tmp_path / "dead_letter" / "events.ndjson").read_bytes().splitlines()
    assert list(map(orjson.loads, lines)) == entries


def test_excerpt_is_short_quoted_escaped_and_masked_before_the_cut() -> None:
    from streamer.core.deadletter import excerpt

    assert excerpt(b'{"a": 1', str) == '"{\\"a\\": 1"'
    assert excerpt(b"\x1b[31mred\r\nforged line", str) == '"\\u001b[31mred\\r\\nforged line"'
    assert excerpt(b"\xff\xfeab", str) == '"\\\\xff\\\\xfeab"'
    long = b"x" * 100
    assert excerpt(long, str) == '"' + "x" * 64 + '"...'
    # a secret running past the cut is masked whole first: no prefix of it is shown
    secret = "S3CR3T-" * 10
    line = ("y" * 50 + secret).encode()
    shown = excerpt(line, lambda text: text.replace(secret, "***"))
    assert shown == '"' + "y" * 50 + '***"' and "S3CR" not in shown
    # more than the masking window: cut, never unmasked
    assert excerpt(b"z" * 10_000, str).endswith('"...')
