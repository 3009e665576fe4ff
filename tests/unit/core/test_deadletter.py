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
