"""A followed file's reader that fails (an I/O error reading it) fails the source,
so the pipeline stops loudly: before, that file was silently never read again
while /health said the source was running."""

from __future__ import annotations

import asyncio
import errno

import pytest

from streamer.core.batch import BatchBuffer
from streamer.core.deadletter import DeadLetters
from streamer.datadir.layout import DataDir
from streamer.observability.metrics import Metrics, SinkStats
from streamer.pipeline.context import Context
from streamer.sources.fanout import Fanout
from streamer.sources.file.config import FileSourceConfig
from streamer.sources.file.source import FileSource


async def test_a_reader_that_fails_fails_the_followed_source(tmp_path, monkeypatch):
    (tmp_path / "app.log").write_bytes(b'{"n": 1}\n')
    buffer = BatchBuffer(max_records=50, max_bytes=10**6, linger_s=60, max_batches=100,
                         drop_newest=False, stats=SinkStats(), whole_blocks=True)
    metrics = Metrics()
    context = Context(metrics=metrics, dead_letters=DeadLetters(tmp_path / "dl"),
                      data_dir=DataDir(tmp_path / "data"), instance_id="i1")
    cfg = FileSourceConfig(type="file", paths=[str(tmp_path / "*.log")], follow=True,
                           glob_interval_ms=50)
    source = FileSource("files", cfg, Fanout("files", [buffer], context.dead_letters,
                                             metrics.source("files")), context)

    def failing_read(fd: int, size: int, position: int) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(source, "_pread", failing_read)
    with pytest.raises(OSError, match="Input/output error"):
        await asyncio.wait_for(source.run(), timeout=5)
