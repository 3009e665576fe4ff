"""File source: globbed files, tailed, with per-file checkpoints.

A file is known by (device, inode) plus a fingerprint of its first bytes, so
a renamed file is not read twice, a re-used inode is not mistaken for an old
file, and a copy-truncated file starts again at 0.  Its checkpoint holds the
offset up to which every chunk has been acknowledged by every sink.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass

from streamer.core.ack import OrderedCommitter
from streamer.core.batch import Origin
from streamer.core.ndjson import Decoded
from streamer.pipeline.context import Context
from streamer.sources.fanout import Fanout
from streamer.sources.file.checkpoint import FileEntry, load_checkpoint, save_checkpoint
from streamer.sources.file.claims import FileClaims
from streamer.sources.file.config import FileSourceConfig
from streamer.sources.splitter import LineSplitter

log = logging.getLogger("streamer.source.file")
CLAIM_SCAN_S = 0.1

FINGERPRINT_BYTES = 256
RETIRED_KEEP = 1000


def fingerprint(fd: int, length: int = FINGERPRINT_BYTES) -> tuple[str, int]:
    head = os.pread(fd, length, 0)
    return hashlib.blake2b(head, digest_size=16).hexdigest(), len(head)


@dataclass
class TailedFile:
    path: str
    dev: int
    ino: int
    fp: str
    fp_len: int
    committer: OrderedCommitter
    fd: int = -1
    task: asyncio.Task | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.dev, self.ino)

    def checkpoint(self) -> FileEntry:
        return {"path": self.path, "dev": self.dev, "ino": self.ino, "fp": self.fp,
                "fp_len": self.fp_len, "offset": self.committer.committed}


class FileSource:
    def __init__(self, name: str, cfg: FileSourceConfig, fanout: Fanout,
                 context: Context) -> None:
        self.name = name
        self._cfg = cfg
        self._fanout = fanout
        self._claims = FileClaims(context.data_dir.claims(name), context.shard)
        self._checkpoint_path = context.data_dir.checkpoint(name)
        self._tails: dict[tuple[int, int], TailedFile] = {}
        self._retired: OrderedDict[tuple[int, int], FileEntry] = OrderedDict()
        self._saved: dict[tuple[int, int], FileEntry] = {}
        self._dirty = False

    # -- checkpoints -------------------------------------------------------------
    def _load_checkpoints(self) -> None:
        self._saved.update(load_checkpoint(self._checkpoint_path))

    def save_checkpoint(self) -> None:
        if not self._dirty:
            return
        files = [t.checkpoint() for t in self._tails.values()]
        files.extend(self._retired.values())
        save_checkpoint(self._checkpoint_path, self.name, files)
        self._dirty = False  # only once written: a failed write is retried next time

    def _advanced(self, _offset: int) -> None:
        self._dirty = True

    # -- discovery ---------------------------------------------------------------
    def _glob(self) -> list[str]:
        seen: dict[str, None] = {}
        for pattern in self._cfg.paths:
            for path in sorted(glob.glob(pattern, recursive=True)):
                seen.setdefault(path, None)
        return list(seen)

    def _discover(self, startup: bool) -> None:
        self._claims.unclaimed.clear()
        for path in self._glob():
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not os.path.isfile(path):
                continue
            key = (st.st_dev, st.st_ino)
            if not self._claims.owns(key):
                continue  # another worker's
            tail = self._tails.get(key)
            if tail is not None:
                tail.path = path  # renamed (rotated) but still ours
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                log.warning("cannot open %s: %s", path, exc)
                continue
            offset = self._resume_offset(fd, key, st.st_size, startup)
            fp, fp_len = fingerprint(fd)
            self._retired.pop(key, None)
            committer = OrderedCommitter(offset, self._advanced)
            tail = TailedFile(path, key[0], key[1], fp, fp_len, committer, fd)
            self._tails[key] = tail
            self._dirty = True
            log.info("reading %s from offset %d", path, offset)
            tail.task = asyncio.create_task(self._read(tail, offset), name=f"file:{path}")

    def _resume_offset(self, fd: int, key: tuple[int, int], size: int, startup: bool) -> int:
        """The saved offset when this is the same file (inode and first bytes)."""
        for known in (self._saved.pop(key, None), self._retired.get(key)):
            if known is None:
                continue
            fp, _ = fingerprint(fd, known["fp_len"])
            if fp == known["fp"]:
                if known["offset"] <= size:
                    return known["offset"]
                log.info("%s is shorter than its checkpoint: truncated, reading from 0",
                         known["path"])
                return 0
        if startup and self._cfg.read_from == "end":
            return size
        return 0

    # -- reading -----------------------------------------------------------------
    async def run(self) -> None:
        self._load_checkpoints()
        self._discover(startup=True)
        try:
            if not self._cfg.follow:
                while self._claims.unclaimed:  # workers > 1: until every file has a reader
                    await asyncio.sleep(CLAIM_SCAN_S)
                    self._discover(startup=True)
                await asyncio.gather(*(t.task for t in list(self._tails.values()) if t.task))
                return
            interval = self._cfg.glob_interval_ms / 1000
            while True:
                await asyncio.sleep(interval)
                self._discover(startup=False)
        finally:
            for tail in list(self._tails.values()):
                if tail.task is not None and not tail.task.done():
                    tail.task.cancel()
            await asyncio.gather(*(t.task for t in self._tails.values() if t.task),
                                 return_exceptions=True)

    async def _read(self, tail: TailedFile, offset: int) -> None:
        cfg = self._cfg
        splitter = LineSplitter(offset, cfg.max_line_bytes)
        position = offset  # next byte to read
        idle_since = time.monotonic()
        poll = cfg.poll_interval_ms / 1000
        try:
            while True:
                # a synchronous pread on the loop, as Fluent Bit's tail input does: a
                # read from the page cache takes well under a millisecond, while a
                # hop to a thread costs more in GIL hand-offs than the read itself
                data = os.pread(tail.fd, cfg.read_bytes, position)
                if data:
                    position += len(data)
                    self._fanout.stats.bytes += len(data)
                    await self._emit(tail, *splitter.feed(data))
                    idle_since = time.monotonic()
                    await asyncio.sleep(0)  # one chunk, then let sinks and timers run
                    continue
                if not cfg.follow:
                    await self._emit(tail, *splitter.finish())
                    return
                await asyncio.sleep(poll)
                state = self._check(tail, position)
                if state == "truncated":
                    log.warning("%s was truncated; reading it again from the start", tail.path)
                    tail.committer = OrderedCommitter(0, self._advanced)
                    tail.fp, tail.fp_len = fingerprint(tail.fd)
                    self._dirty = True
                    splitter = LineSplitter(0, cfg.max_line_bytes)
                    position = 0
                elif state == "gone" and time.monotonic() - idle_since >= cfg.rotate_wait_s:
                    await self._emit(tail, *splitter.finish())
                    log.info("%s was rotated away and is idle; done with it", tail.path)
                    self._retire(tail)
                    return
        finally:
            if tail.fd >= 0 and tail.key not in self._tails:
                os.close(tail.fd)
                tail.fd = -1

    def _check(self, tail: TailedFile, position: int) -> str:
        """At end of file: 'ok', 'truncated' (copytruncate) or 'gone' (rotated away)."""
        size = os.fstat(tail.fd).st_size
        if size < position:
            return "truncated"
        if size > position or tail.fp_len < FINGERPRINT_BYTES:
            head_fp, _ = fingerprint(tail.fd, tail.fp_len)
            if head_fp != tail.fp:
                return "truncated"  # truncated and rewritten past our offset
            if tail.fp_len < FINGERPRINT_BYTES and size > tail.fp_len:
                tail.fp, tail.fp_len = fingerprint(tail.fd)
        try:
            st = os.stat(tail.path)
        except OSError:
            return "gone"
        return "ok" if (st.st_dev, st.st_ino) == tail.key else "gone"

    async def _emit(self, tail: TailedFile, decoded: Decoded, start: int) -> None:
        end = start + len(decoded.block)
        committer = tail.committer
        await self._fanout.emit(decoded, lambda sinks: committer.track(end, sinks),
                                Origin(self.name, tail.path, start))

    def _retire(self, tail: TailedFile) -> None:
        self._tails.pop(tail.key, None)
        self._retired[tail.key] = tail.checkpoint()
        while len(self._retired) > RETIRED_KEEP:
            self._retired.popitem(last=False)
        self._dirty = True

    async def after_drain(self) -> None:
        """Checkpoints are saved by the pipeline; nothing else to settle."""

    def finish(self) -> None:
        """Close every file after the source stopped; keep their checkpoints."""
        for tail in list(self._tails.values()):
            if tail.fd >= 0:
                os.close(tail.fd)
                tail.fd = -1

    def close(self) -> None:
        """No metrics of its own to take back (its counters are the fanout's)."""
