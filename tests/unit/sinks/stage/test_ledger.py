"""The exactly-once ledger in a local stage: markers, fences, a file's marker found
again by its name, stale chunks of a moved partition."""

from __future__ import annotations

from pathlib import Path

import orjson

from streamer.core.ack import Ack
from streamer.core.batch import Origin, Piece
from streamer.core.lines import Lines
from streamer.observability.metrics import Metrics
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.journal import Window
from streamer.sinks.stage.ledger import Ledger, completion, marker_path
from streamer.sinks.stage.store.local import LocalStore, StagedFile
from streamer.sinks.stage.store.retry import Retry
from streamer.sinks.stage.streams import group_pieces, stream_stem

STREAM = ("kafka", "events/3")


def store(tmp_path: Path) -> LocalStore:
    cfg = StageSinkConfig.model_validate(
        {"type": "stage", "url": f"file://{tmp_path}/stage/", "columns": ["id"]})
    return LocalStore(cfg, "i1", Retry(Metrics().sink("st"), "st", (OSError,)), b"id\n")


def staged(window: str, start: int, end: int, records: int) -> StagedFile:
    file = StagedFile(Window(window), f"part-{stream_stem(STREAM, start)}.csv", 0.0)
    file.stream, file.start, file.end, file.record_count = STREAM, start, end, records
    return file


async def test_the_fence_is_the_highest_end_of_any_instance_and_markers_name_their_file(
        tmp_path: Path) -> None:
    local = store(tmp_path)
    mine, theirs = Ledger(local, "i1"), Ledger(local, "i2")
    assert await mine.fence(STREAM) is None
    first, second = staged("w1-i1", 0, 400, 400), staged("w9-i2", 400, 1000, 600)
    path = await mine.record(first, completion(first, 1234))
    await theirs.record(second, completion(second, 99))
    assert path == marker_path(STREAM, 0, 400)
    assert await mine.fence(STREAM) == await theirs.fence(STREAM) == 1000
    assert await mine.fence(("kafka", "events/2")) is None
    body = orjson.loads((tmp_path / "stage" / path).read_bytes())
    assert body == {"file": first.name, "source": "kafka", "stream": "events/3", "start": 0,
                    "end": 400, "records": 400, "bytes": 1234, "window": "w1-i1",
                    "instance": "i1"}
    # a restart finds the marker of its own file only (same name in another window: not)
    assert (await mine.find("w1-i1", first.name))["end"] == 400
    assert await mine.find("w2-i1", first.name) is None
    assert await mine.find("w1-i1", "part-00001.csv") is None
    await mine.remove(path)
    assert await mine.fence(STREAM) == 1000 and await mine.find("w1-i1", first.name) is None


def piece(start: int, end: int, epoch: int) -> Piece:
    return Piece(None, Lines.of([b'{"id":1}']), Ack(1, None),
                 Origin("kafka", "kafka:events/3", start, "events/3", end, epoch))


def test_chunks_read_before_a_partition_moved_are_stale_not_acknowledged() -> None:
    old, current, other = piece(0, 10, 3), piece(10, 20, 4), piece(0, 5, 1)
    other = Piece(None, other.lines, other.ack, Origin("kafka", "x", 0, "events/1", 5, 1))
    groups, skipped, stale = group_pieces([old, current, other], {}, {STREAM: 4})
    assert stale == [old] and not skipped and old.ack.pending == 1
    assert groups == {STREAM: [current], ("kafka", "events/1"): [other]}
