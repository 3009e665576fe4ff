"""Where stage files go: the storage interface and its local implementation.

A store opens files (named by their window), takes the bytes the sink's
encoder writes (compressing CSV and NDJSON as one stream per file when asked,
formats.py), and completes them durably: a local file is fsynced and renamed
from _tmp/<instance>/ into <dir>/<window>/; an S3 object (store/s3.py) is
complete in S3.  Only a completed file's batches are acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from streamer.datadir.files import fsync_dir, write_atomic
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.formats import Compressor, compressor, suffix
from streamer.sinks.stage.journal import Window
from streamer.sinks.stage.store.retry import FatalStageError, Retry
from streamer.sinks.stage.store.writeback import WRITEBACK_BYTES, sync_file_range

log = logging.getLogger("streamer.sink.stage")


@dataclass
class WrittenBatch:
    """What a written batch leaves behind until its file is complete: only acks."""

    acks: list
    count: int
    nbytes: int
    taken_at: float


@dataclass
class StagedFile:
    """The sink's view of a file being written (either store)."""

    window: Window
    name: str
    opened_at: float
    size: int = 0  # bytes written whole (before any compression)
    record_count: int = 0
    # Parquet: the encoder's writer of the open file (parquet.ParquetFileWriter)
    parquet: Any = None
    written_batches: list[WrittenBatch] = field(default_factory=list)
    # exactly-once: the stream (source, key) and its positions the file holds
    stream: tuple[str, str | None] | None = None
    start: int = -1
    end: int = -1

    def write(self, data: bytes) -> None:
        """Append the encoder's bytes (whole rows)."""
        raise NotImplementedError


class Store(Protocol):
    background: bool  # complete() may run while the next file is written
    suffix: str

    async def start(self) -> None: ...
    def starting(self) -> asyncio.Task | None: ...  # what start() left running
    async def list_window(self, window_id: str) -> list[tuple[str, int]]: ...
    async def open(self, window: Window, name: str) -> StagedFile: ...
    async def flushed(self, file: StagedFile) -> None: ...
    async def complete(self, file: StagedFile) -> int: ...
    async def delete(self, window_id: str, name: str) -> None: ...
    async def discard(self, file: StagedFile) -> None: ...  # an open file, never completed
    # small objects under the stage root (the exactly-once ledger): path relative to it
    async def put_small(self, path: str, body: bytes) -> None: ...
    async def get_small(self, path: str) -> bytes | None: ...
    async def list_small(self, prefix: str) -> list[str]: ...  # names after the prefix
    async def delete_small(self, path: str) -> None: ...
    def locations(self, window: Window) -> list[str]: ...
    def gauges(self) -> dict[str, float]: ...
    async def close(self, abort: bool) -> None: ...


@dataclass
class LocalFile(StagedFile):
    tmp_path: Path = Path()
    fd: int = -1
    compressor: Compressor | None = None
    stored: int = 0  # bytes in the file (compressed)
    renamed: bool = False  # moved into its window (a retry only syncs the directory)
    # a write that failed after compressing: retried with the same output
    _failed: tuple[bytes, bytes] | None = None
    _tail: bytes = b""  # the compressed stream's end, until written
    # bytes whose write-back has been started (writeback.py), and that start, running
    written_back: int = 0
    writing_back: asyncio.Future | None = None

    def write(self, data: bytes) -> None:
        # straight into the page cache from the event loop: a thread hop per
        # batch costs more than the write
        out = data
        if self.compressor is not None:
            if self._failed is not None and self._failed[0] is data:
                out = self._failed[1]
            else:
                out = self.compressor.compress(data)
            self._failed = None
        self._write_out(out, data)
        self.size += len(data)

    def _write_out(self, out: bytes, data: bytes) -> None:
        view = memoryview(out)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            # drop the torn tail so that the retry starts clean
            os.ftruncate(self.fd, self.stored)
            os.lseek(self.fd, self.stored, os.SEEK_SET)
            if self.compressor is not None:
                self._failed = (data, out)
            raise
        self.stored += len(out)

    def finish(self) -> None:
        """The compressed stream's end (once, before the file completes)."""
        if self.compressor is not None:
            self._tail, self.compressor = self.compressor.flush(), None
        if self._tail:
            self._write_out(self._tail, b"")
            self._tail = b""


class LocalStore:
    """<dir>/<window>/part-NNNNN.csv (or .csv.gz, .ndjson, .parquet, ...), written
    under <dir>/_tmp/<instance>/ first."""

    background = False

    def __init__(self, cfg: StageSinkConfig, instance: str, retry: Retry,
                 header: bytes) -> None:
        self._cfg = cfg
        self.suffix = suffix(cfg.format, cfg.compression)
        self._dir = cfg.directory
        self._tmp_dir = self._dir / "_tmp" / instance
        self._retry = retry
        self._header = header
        self._seq = 0
        self._write_back = sync_file_range() if cfg.fsync else None

    async def start(self) -> None:
        """Drop files of a crashed run (their batches were never acknowledged, the
        sources send them again)."""
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self._tmp_dir.iterdir():
            log.info("removing incomplete stage file %s from an earlier run", leftover)
            leftover.unlink()

    def starting(self) -> asyncio.Task | None:
        return None

    async def list_window(self, window_id: str) -> list[tuple[str, int]]:
        directory = self._dir / window_id
        if not directory.exists():
            return []
        return [(p.name, p.stat().st_size)
                for p in sorted(directory.glob("part-*"))]

    async def open(self, window: Window, name: str) -> LocalFile:
        self._seq += 1
        # named after its format (`.parquet.tmp`); start() removes any name: older
        # versions named every format's `.csv.tmp`
        path = self._tmp_dir / f"part-{time.time_ns()}-{self._seq:05d}{self.suffix}.tmp"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        file = LocalFile(window, name, time.monotonic(), tmp_path=path, fd=fd,
                         compressor=compressor(self._cfg.format, self._cfg.compression,
                                               self._cfg.gzip_level))
        if self._header:
            await self._retry.run("write", file.write, self._header)
        return file

    async def flushed(self, file: StagedFile) -> None:
        """Every WRITEBACK_BYTES, the write-back of what was written since started in
        a thread, not waited for (one at a time a file)."""
        assert isinstance(file, LocalFile)
        if (self._write_back is None or file.stored - file.written_back < WRITEBACK_BYTES
                or (file.writing_back is not None and not file.writing_back.done())):
            return
        start, file.written_back = file.written_back, file.stored
        file.writing_back = asyncio.get_running_loop().run_in_executor(
            None, self._write_back, file.fd, start, file.stored - start)

    async def complete(self, file: StagedFile) -> int:
        assert isinstance(file, LocalFile)
        await _written_back(file)  # its thread done with the descriptor
        target = self._dir / file.window.id / file.name
        await self._retry.run("close", asyncio.to_thread, self._complete, file, target)
        return file.stored

    def _complete(self, file: LocalFile, target: Path) -> None:
        """Retried on an OSError, except a failed fsync: Linux marks the pages whose
        write-back failed clean, so a second fsync passes without them reaching the
        disk (PostgreSQL's "fsyncgate"); the file's bytes are not kept to write again,
        so the sink stops and its records, never acknowledged, are read again."""
        if file.fd >= 0:
            file.finish()
            if self._cfg.fsync:
                _fsync_or_fatal(self._retry.sink, file.tmp_path, partial(os.fsync, file.fd))
            os.close(file.fd)
            file.fd = -1
        if not file.renamed:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file.tmp_path, target)
            file.renamed = True
        if self._cfg.fsync:
            _fsync_or_fatal(self._retry.sink, target.parent, partial(fsync_dir, target.parent))

    async def delete(self, window_id: str, name: str) -> None:
        """A complete file that no completion record counts (exactly-once recovery)."""
        (self._dir / window_id / name).unlink(missing_ok=True)

    async def discard(self, file: StagedFile) -> None:
        assert isinstance(file, LocalFile)
        await _written_back(file)
        if file.fd >= 0:
            os.close(file.fd)
            file.fd = -1
        file.tmp_path.unlink(missing_ok=True)

    async def put_small(self, path: str, body: bytes) -> None:
        await self._retry.run("write", asyncio.to_thread, partial(
            write_atomic, self._dir / path, body, fsync=self._cfg.fsync))

    async def get_small(self, path: str) -> bytes | None:
        try:
            return (self._dir / path).read_bytes()
        except FileNotFoundError:
            return None

    async def list_small(self, prefix: str) -> list[str]:
        folder, _, start = prefix.rpartition("/")
        directory = self._dir / folder
        if not directory.is_dir():
            return []
        return [p.name[len(start):] for p in directory.iterdir()
                if p.name.startswith(start) and not p.name.startswith(".")]

    async def delete_small(self, path: str) -> None:
        (self._dir / path).unlink(missing_ok=True)

    def locations(self, window: Window) -> list[str]:
        return [str(self._dir / window.id / name) for name in window.files]

    def gauges(self) -> dict[str, float]:
        return {}

    async def close(self, abort: bool) -> None:
        return None


def _fsync_or_fatal(sink: str, path: Path, fsync: Callable[[], None]) -> None:
    try:
        fsync()
    except OSError as exc:
        raise FatalStageError(
            f"stage sink {sink}: fsync of {path} failed ({exc}): the disk may not hold "
            "what was written (a second fsync would pass without it), so the file does not "
            "count; "
            "none of its records was acknowledged: a restart reads them again") from exc


async def _written_back(file: LocalFile) -> None:
    """The file's write-back start finished (its errors are the fsync's to see)."""
    if file.writing_back is not None:
        await asyncio.gather(file.writing_back, return_exceptions=True)
        file.writing_back = None
