"""Dead letters: input the pipeline could not take, and where it is written.

`BadInput` is the one type for it, whoever found it (the NDJSON check, the line
splitter, the length-prefixed framer, a sink that a destination refused).
`entry` turns it into one line of data_dir/dead_letter/<component>.ndjson:

    {"time", "component", "origin", "offset", ["payload_position"], "reason",
     ...extra, "raw" | "raw_base64"}

* `origin` names the input, the same way for every source: the file's path,
  ``stdin``, ``tcp:HOST:PORT`` (the peer of a socket connection, ``[HOST]:PORT``
  for IPv6) or ``kafka:TOPIC/PARTITION``.
* `offset` is where the bad input starts in that origin: a byte offset in the
  file, the stdin stream or the connection (counted from its first byte; a
  length-prefixed frame's header), or a Kafka message offset.
* `payload_position` only for a bad line inside a Kafka message or a frame that
  holds several lines, when it is not the first: its byte position in there.
* `raw` holds the bytes (an oversize line: its first bytes); `raw_base64`
  instead when they are not UTF-8.

A sink's dead letter names the origin of the record and the offset of the read
it came in (a chunk holds many records), plus `source` and what the sink adds
(`status`, `table`, ...).

A log line shows bad input only as an `excerpt`: its first characters, secrets
masked before the cut, quoted and escaped (input must not forge log lines).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson


@dataclass(slots=True)
class BadInput:
    """Input we could not take: where it starts in its origin, why, and its bytes
    (or the first of them)."""

    offset: int
    reason: str
    raw: bytes
    payload_position: int = 0


EXCERPT_CHARS = 64
# masked before the cut: a secret that starts in the excerpt and runs past it is
# found whole in this much of the line
EXCERPT_MASK_WINDOW = 4096


def excerpt(raw: bytes, mask: Callable[[str], str], chars: int = EXCERPT_CHARS) -> str:
    """The first `chars` characters of `raw` as a JSON string (control characters
    and quotes escaped, bytes that are not UTF-8 as \\xNN), `...` after it when cut;
    `mask` is applied before the cut."""
    head = raw[:EXCERPT_MASK_WINDOW]
    text = mask(head.decode("utf-8", "backslashreplace"))
    quoted = orjson.dumps(text[:chars]).decode()
    return quoted + "..." if len(text) > chars or len(head) < len(raw) else quoted


def entry(component: str, origin: str, bad: BadInput, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "component": component,
        "origin": origin,
        "offset": bad.offset,
    }
    if bad.payload_position:
        item["payload_position"] = bad.payload_position
    item["reason"] = bad.reason
    item.update(extra)
    try:
        item["raw"] = bad.raw.decode("utf-8")
    except UnicodeDecodeError:
        item["raw_base64"] = base64.b64encode(bad.raw).decode("ascii")
    return item


class DeadLetters:
    """Appends entries and flushes them to the OS at once (they survive kill -9);
    `sync` makes them durable on disk before a checkpoint moves past them."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._files: dict[str, BinaryIO] = {}
        self._dirty: set[str] = set()

    def path(self, component: str) -> Path:
        return self._dir / f"{component}.ndjson"

    def write(self, component: str, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        out = self._files.get(component)
        if out is None:
            self._dir.mkdir(parents=True, exist_ok=True)
            out = self._files[component] = open(self.path(component), "ab")  # noqa: SIM115
        out.write(b"".join(orjson.dumps(e) + b"\n" for e in entries))
        out.flush()
        self._dirty.add(component)

    def sync(self) -> None:
        for component in self._dirty:
            os.fsync(self._files[component].fileno())
        self._dirty.clear()

    def close(self) -> None:
        self.sync()
        for out in self._files.values():
            out.close()
        self._files.clear()
