"""The exactly-once ledger: what every instance staged per Kafka partition, kept in
the stage itself (S3 or the local stage directory), so that a partition's next
owner knows where the last one stopped.

When a stage file of a stream that can move between instances is complete, a
marker `_ledger/<stream id>/<start>-<end>` (15-digit positions) is written before
the file's completion record and before its acknowledgements: the marker is what
makes the file count (a restart keeps a file that has one and deletes one that has
neither marker nor record).  On assignment the highest `end` under the stream's
prefix is its fence: one listing per assigned partition.  A writer removes its own
previous marker of a stream once the next one is journaled, so a prefix holds about
one marker per hand-off.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from streamer.sinks.stage.store.local import StagedFile, Store
from streamer.sinks.stage.streams import STREAM_FILE, Stream, stream_id

log = logging.getLogger("streamer.sink.stage")

LEDGER_DIR = "_ledger"
WIDTH = 15
RECORD_KEYS = ("file", "source", "stream", "start", "end", "records", "bytes")


def stream_prefix(stream: Stream) -> str:
    return f"{LEDGER_DIR}/{stream_id(stream)}/"


def marker_path(stream: Stream, start: int, end: int) -> str:
    return f"{stream_prefix(stream)}{start:0{WIDTH}d}-{end:0{WIDTH}d}"


def completion(file: StagedFile, size: int) -> dict[str, Any]:
    """A file's completion record (journal) and marker body (ledger)."""
    assert file.stream is not None
    return {"file": file.name, "source": file.stream[0], "stream": file.stream[1],
            "start": file.start, "end": file.end, "records": file.record_count,
            "bytes": size}


class Ledger:
    def __init__(self, store: Store, instance: str) -> None:
        self._store = store
        self._instance = instance

    async def record(self, file: StagedFile, done: dict[str, Any]) -> str:
        """The marker of a complete file; its path."""
        assert file.stream is not None
        path = marker_path(file.stream, file.start, file.end)
        body = {**done, "window": file.window.id, "instance": self._instance}
        await self._store.put_small(path, orjson.dumps(body))
        return path

    async def fence(self, stream: Stream) -> int | None:
        """The highest end any instance recorded for the stream (None: nothing)."""
        ends = [int(name.rsplit("-", 1)[-1]) for name in
                await self._store.list_small(stream_prefix(stream))
                if name.rsplit("-", 1)[-1].isdigit()]
        return max(ends, default=None)

    async def find(self, window_id: str, name: str) -> dict[str, Any] | None:
        """The completion record in the marker of a stage file (found by its name:
        stream id and start), if one was written for this file in this window."""
        if not STREAM_FILE.match(name):
            return None
        sid, start = name[len("part-"):].split(".", 1)[0].split("-", 1)
        prefix = f"{LEDGER_DIR}/{sid}/{start}-"
        for rest in await self._store.list_small(prefix):
            body = await self._store.get_small(prefix + rest)
            if body is None:
                continue
            try:
                marker = orjson.loads(body)
            except orjson.JSONDecodeError:
                continue
            if marker.get("window") == window_id and marker.get("file") == name:
                return {key: marker[key] for key in RECORD_KEYS}
        return None

    async def remove(self, path: str) -> None:
        await self._store.delete_small(path)
