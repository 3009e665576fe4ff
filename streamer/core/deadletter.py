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
from typing import Any

import orjson

from streamer.core.printable import printable_values


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
    """Appends entries and writes them to the OS at once (they survive kill -9);
    `sync` makes them durable on disk before a checkpoint moves past them.

    A write the disk does not take (full, read-only, failing) loses nothing: what
    was not written is kept, in order, and written first by the next `write`,
    `flush` or `sync` (so no entry is written twice or torn).  `write` then
    returns False: a source waits for `flush` before it reads on, a sink goes on
    (no checkpoint passes its records until `sync` succeeds).

    An fsync that fails is not simply tried again: Linux marks the pages whose
    write-back failed clean, so the next fsync passes without them reaching the
    disk.  What was written since the last fsync that passed is kept; on a failed
    fsync the file is cut back to that point and those bytes wait again, in front
    of the rest, to be written and synced anew."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._fds: dict[str, int] = {}
        self._pending: dict[str, bytearray] = {}
        self._dirty: set[str] = set()
        # per file: its size at the last fsync that passed (or at its opening) and
        # the bytes written after it
        self._synced: dict[str, int] = {}
        self._unsynced: dict[str, bytearray] = {}
        self._rewrite: set[str] = set()  # a failed fsync: cut back and write again

    def path(self, component: str) -> Path:
        return self._dir / f"{component}.ndjson"

    @property
    def pending_bytes(self) -> int:
        return sum(len(data) for data in self._pending.values())

    def write(self, component: str, entries: list[dict[str, Any]]) -> bool:
        """Whether every entry (and whatever waited before them) is written."""
        if not entries:
            return True
        try:
            data = b"".join(orjson.dumps(e) + b"\n" for e in entries)
        except orjson.JSONEncodeError:  # a str that is not UTF-8: a file name's bytes
            data = b"".join(orjson.dumps(printable_values(e)) + b"\n" for e in entries)
        waiting = self._pending.get(component)
        if waiting is not None:
            waiting += data
        else:
            self._pending[component] = bytearray(data)
        try:
            self._write_pending(component)
        except OSError:
            return False
        return True

    def flush(self) -> None:
        """Write what earlier writes could not; raises OSError while the disk
        does not take it."""
        for component in list(self._rewrite):
            self._write_again(component)
        for component in list(self._pending):
            self._write_pending(component)

    def _write_pending(self, component: str) -> None:
        fd = self._fds.get(component)
        if fd is None:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path(component), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            self._fds[component] = fd
            self._synced[component] = os.fstat(fd).st_size
            self._unsynced[component] = bytearray()
        data = self._pending[component]
        self._dirty.add(component)
        unsynced = self._unsynced[component]
        while data:
            written = os.write(fd, data)  # a partial write: the rest next time round
            unsynced += data[:written]
            del data[:written]
        del self._pending[component]

    def sync(self) -> None:
        self.flush()
        for component in list(self._dirty):
            fd, unsynced = self._fds[component], self._unsynced[component]
            try:
                os.fsync(fd)
            except OSError:
                self._rewrite.add(component)
                raise
            self._synced[component] += len(unsynced)
            unsynced.clear()
            self._dirty.discard(component)

    def _write_again(self, component: str) -> None:
        """After a failed fsync: the file cut back to its last synced size, and what
        was written since pending again, before what waited already."""
        unsynced = self._unsynced[component]
        os.ftruncate(self._fds[component], self._synced[component])
        self._pending[component] = unsynced + self._pending.get(component, bytearray())
        self._unsynced[component] = bytearray()
        self._rewrite.discard(component)

    def close(self) -> None:
        """Closes the files.  What is still not written is dropped: the stop's
        `sync` failed on it and no checkpoint passed its input."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._pending.clear()
        self._dirty.clear()
        self._synced.clear()
        self._unsynced.clear()
        self._rewrite.clear()
