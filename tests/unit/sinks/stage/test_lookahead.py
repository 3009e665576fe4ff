"""The stage sink's one-batch lookahead (sinks/stage/lookahead.py): the next batch's
query starts before the last batch's rows are written, and the files still hold
exactly the input's records once, in order, rotated at `max_file_records`."""

from __future__ import annotations

import asyncio
import csv
import io

import orjson
import pytest

from streamer.core.ack import Ack
from streamer.core.batch import BatchBuffer, Origin, Piece
from streamer.core.deadletter import DeadLetters
from streamer.core.lines import Lines
from streamer.datadir.layout import DataDir
from streamer.observability.metrics import Metrics
from streamer.pipeline.context import Context
from streamer.sinks.stage import sink as stage_sink
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.csv_native import native_available

RECORDS = 100_000
PIECE = 500  # records a piece (and a buffer batch): the sink takes 20,000 at a time
LIMIT = 45_000  # max_file_records: the third batch goes into two files

pytestmark = pytest.mark.skipif(not native_available(["n", "s"]), reason="no memfd")


def record(n: int) -> dict:
    return {"n": n, "s": f"r{n}" + "x" * (n % 13), "f": n / 8}


def staged_rows(stage) -> list[list[list[str]]]:
    """Each complete file's rows (header dropped), the files in name order."""
    files = sorted(p for p in stage.rglob("part-*.csv") if "_tmp" not in p.parts)
    return [list(csv.reader(io.StringIO(p.read_text(), newline="")))[1:] for p in files]


async def run_sink(tmp_path, monkeypatch, events: list[tuple[str, int]]) -> None:
    metrics = Metrics(exposed=False)
    context = Context(metrics=metrics, dead_letters=DeadLetters(tmp_path / "dl"),
                      data_dir=DataDir(tmp_path / "data"), instance_id="i1")
    cfg = StageSinkConfig(type="stage", url=f"file://{tmp_path / 'stage'}",
                          columns=["n", "s", "f"], max_file_records=LIMIT, fsync=False)
    # every batch waits in the buffer before the sink starts: the sink is behind
    buffer = BatchBuffer(max_records=PIECE, max_bytes=10**8, linger_s=60,
                         max_batches=RECORDS, drop_newest=False, stats=metrics.sink("s"))
    released = []
    for start in range(0, RECORDS, PIECE):
        raws = [orjson.dumps(record(n)) for n in range(start, start + PIECE)]
        await buffer.put(Piece(None, Lines.of(raws), Ack(1, lambda s=start: released.append(s)),
                               Origin("input", "in.ndjson", start)))
    buffer.close()
    sink = stage_sink.StageSink("s", cfg, buffer, context)

    started = sink._encoder.start

    def start(segments):
        events.append(("start", orjson.loads(segments[0].raws[0])["n"]))
        return started(segments)

    written = sink._store_write

    async def write(file, rows):
        events.append(("write", int(bytes(rows).split(b",", 1)[0])))
        await written(file, rows)

    monkeypatch.setattr(sink._encoder, "start", start)
    monkeypatch.setattr(sink, "_store_write", write)
    await asyncio.wait_for(sink.run(), 60)
    sink.close()
    assert sorted(released) == list(range(0, RECORDS, PIECE))  # every piece acknowledged


async def test_next_query_starts_before_rows_are_written_and_files_keep_order(
        tmp_path, monkeypatch):
    events: list[tuple[str, int]] = []
    await run_sink(tmp_path, monkeypatch, events)

    expected = [[str(n), r["s"], orjson.dumps(r["f"]).decode()]
                for n in range(RECORDS) for r in [record(n)]]
    files = staged_rows(tmp_path / "stage")
    assert [len(rows) for rows in files] == [LIMIT, LIMIT, RECORDS - 2 * LIMIT]
    assert [row for rows in files for row in rows] == expected

    # batches of 20,000: the 2nd goes whole into the first file, so its query is
    # started before the 1st's rows are written; the 3rd does not (5,000 records
    # left in the file) and is encoded when written, in two queries across the
    # rotation; the 4th is started ahead again, the 5th (10,000 left) is not
    assert events == [
        ("start", 20_000), ("write", 0), ("write", 20_000),
        ("write", 40_000), ("start", 60_000), ("write", 45_000),
        ("write", 60_000), ("write", 80_000), ("write", 90_000)]
