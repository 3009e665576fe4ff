"""Completing stage files (a mixin of StageSink): the encoder's last bytes
written, the store's completion (in the background for S3, acknowledged in file
order), the exactly-once ledger marker and completion record, then the acks."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from streamer.sinks.stage.ledger import completion
from streamer.sinks.stage.store.local import StagedFile

if TYPE_CHECKING:
    from streamer.sinks.stage.sink import StageSink


class FileCompletions:
    """The completing half of StageSink (a mixin: it shares the sink's state)."""

    async def _finish(self: StageSink, file: StagedFile) -> None:
        rest = await self._encoder.finish(file)  # a Parquet file is written whole now
        if rest:
            await self._store_write(file, rest)
            await self._store.flushed(file)
        if not self._store.background:
            await self._complete(file, None)
            return
        await self._completing.acquire()
        task = asyncio.create_task(self._complete(file, self._last_completion),
                                   name=f"complete:{self.name}:{file.name}")
        self._last_completion = task
        self._completions.add(task)
        task.add_done_callback(self._completed)

    def _completed(self: StageSink, task: asyncio.Task) -> None:
        self._completions.discard(task)
        self._completing.release()
        self._fail_on_error(task)

    def _fail_on_error(self: StageSink, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._fatal is not None and not self._fatal.done():
            self._fatal.set_exception(exc)

    async def _complete(self: StageSink, file: StagedFile, before: asyncio.Task | None) -> None:
        await self.windows.journaled()  # its window's `open` before the file is in it
        size = await self._store.complete(file)
        if before is not None:
            await before  # acknowledge in file order
        if file.stream is not None:  # exactly once: it counts once journaled
            self._faults.hit("stage.completed")
            done = completion(file, size)
            marker = None
            if file.stream[0] in self._moving:  # the ledger first: it makes the file count
                marker = await self._ledger.record(file, done)
                self._faults.hit("stage.marked")
            self._journal.record_completed(file.window, done)
            await self.windows.journaled()
            self._faults.hit("stage.journaled")
            if marker is not None:
                previous = self._last_marker.get(file.stream)
                self._last_marker[file.stream] = marker
                if previous is not None:  # superseded by a journaled one: the fence holds
                    await self._ledger.remove(previous)
        self._stats.count("files_staged")
        self._stats.count("bytes_staged", size)
        self.windows.add_file(file.name, size, file.record_count, file.window)
        await self.windows.journaled()  # the window's `closed`, if this file closed it
        now = time.monotonic()
        latency = self._metrics.sink_latency.labels(self.name)
        for written in file.written_batches:
            for ack in written.acks:
                ack.release()
            self._stats.delivered += written.count
            self._stats.delivered_bytes += written.nbytes
            latency.observe(now - written.taken_at)
