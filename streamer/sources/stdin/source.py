"""Stdin source: NDJSON until EOF.  Nothing to checkpoint: what is not yet
acknowledged when the process dies is lost with the pipe (docs/guarantees.md)."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from typing import BinaryIO

from streamer.core.ack import Ack
from streamer.core.batch import Origin
from streamer.core.ndjson import Decoded
from streamer.pipeline.context import Context
from streamer.sources.fanout import Fanout
from streamer.sources.splitter import LineSplitter
from streamer.sources.stdin.config import StdinSourceConfig

log = logging.getLogger("streamer.source.stdin")


class StdinSource:
    def __init__(self, name: str, cfg: StdinSourceConfig, fanout: Fanout,
                 context: Context, stream: BinaryIO | None = None) -> None:
        self.name = name
        self._cfg = cfg
        self._fanout = fanout
        # None: descriptor 0 is closed (`<&-`): an empty input
        self._stream = stream if stream is not None else getattr(sys.stdin, "buffer", None)
        self._reads_stdin = context.shard.reads_stdin

    async def run(self) -> None:
        if not self._reads_stdin:
            return  # with `workers` > 1, worker 0 reads stdin
        if self._stream is None:
            log.warning("source %s: stdin is closed: nothing to read", self.name)
            return
        splitter = LineSplitter(0, self._cfg.max_line_bytes)
        async for data in self._reads():
            self._fanout.stats.bytes += len(data)
            await self._emit(*splitter.feed(data))
        await self._emit(*splitter.finish())

    async def _reads(self):
        fd = self._stream.fileno()
        size = self._cfg.read_bytes
        loop = asyncio.get_running_loop()
        if stat.S_ISREG(os.fstat(fd).st_mode):
            # a regular file never blocks; event-loop pipes do not accept one
            position = os.lseek(fd, 0, os.SEEK_CUR)
            while data := await loop.run_in_executor(None, os.pread, fd, size, position):
                position += len(data)
                yield data
            return
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)):
            # a character device such as /dev/null: the event loop cannot watch it
            # (uvloop aborts the process), and a read of it does not wait long
            while data := await loop.run_in_executor(None, os.read, fd, size):
                yield data
            return
        reader = asyncio.StreamReader(limit=size)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", closefd=False))
        try:
            while data := await reader.read(size):
                yield data
        finally:
            transport.close()

    async def _emit(self, decoded: Decoded, start: int) -> None:
        # what was read from the pipe cannot be read again: a stop must not drop it
        await self._fanout.emit(decoded, lambda sinks: Ack(sinks),
                                Origin(self.name, "stdin", start), kept=True)

    def save_checkpoint(self) -> None:
        """Nothing to save: stdin cannot be replayed."""

    def finish(self) -> None:
        """Nothing to close: stdin belongs to the process."""

    async def after_drain(self) -> None:
        """Nothing to acknowledge upstream."""

    def close(self) -> None:
        """No metrics of its own to take back (its counters are the fanout's)."""
