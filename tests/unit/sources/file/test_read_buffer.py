"""The file source reads every file into one reused buffer: what it hands the
sinks must be copies that later reads (of the same file or another) never change."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import orjson

from streamer.core.batch import BatchBuffer
from streamer.core.deadletter import DeadLetters
from streamer.datadir.layout import DataDir
from streamer.observability.metrics import Metrics, SinkStats
from streamer.pipeline.context import Context
from streamer.sources.fanout import Fanout
from streamer.sources.file.config import FileSourceConfig
from streamer.sources.file.source import FileSource


def write_inputs(directory: Path, files: int, records: int) -> dict[str, bytes]:
    """NDJSON files of records of uneven lengths, so reads end mid-line."""
    contents = {}
    for f in range(files):
        lines = [orjson.dumps({"file": f, "n": n, "pad": "x" * (n * 7 % 53)}) + b"\n"
                 for n in range(records)]
        path = directory / f"in-{f}.log"
        path.write_bytes(b"".join(lines))
        contents[str(path)] = path.read_bytes()
    return contents


async def test_batches_keep_their_bytes_while_later_reads_reuse_the_buffer(tmp_path):
    (tmp_path / "in").mkdir()
    contents = write_inputs(tmp_path / "in", files=3, records=400)
    # room for every batch, so none is consumed (or freed) before the last read
    buffer = BatchBuffer(max_records=50, max_bytes=10**6, linger_s=60, max_batches=10**4,
                         drop_newest=False, stats=SinkStats(), whole_blocks=True)
    metrics = Metrics()
    context = Context(metrics=metrics, dead_letters=DeadLetters(tmp_path / "dl"),
                      data_dir=DataDir(tmp_path / "data"), instance_id="i1")
    cfg = FileSourceConfig(type="file", paths=[str(tmp_path / "in" / "*.log")], follow=False,
                           read_bytes=97)  # many reads per file, of every file in turn
    fanout = Fanout("files", [buffer], context.dead_letters, metrics.source("files"))
    await FileSource("files", cfg, fanout, context).run()
    buffer.close()

    pieces = []
    while (batch := await buffer.get()) is not None:
        pieces.extend(batch.pieces)
    read_back: dict[str, list[bytes]] = defaultdict(list)
    for piece in sorted(pieces, key=lambda p: (p.origin.stream, p.origin.offset)):
        views = piece.lines.ndjson()
        # each piece is a range of a block of its own, never of the read buffer
        assert all(isinstance(view.obj, bytes) for view in views)
        read_back[piece.origin.stream].extend(bytes(view) for view in views)
    assert {path: b"".join(parts) for path, parts in read_back.items()} == contents
    assert sum(p.count for p in pieces) == 3 * 400
