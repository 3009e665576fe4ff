"""File source: globbed files, tailed, with per-file checkpoints.

A file is known by (device, inode) plus a fingerprint of its first bytes, so
a renamed file is not read twice, a re-used inode is not mistaken for an old
file, and a copy-truncated file starts again at 0.  Its checkpoint holds the
offset up to which every chunk has been acknowledged by every sink.

A file that is rotated away (renamed, deleted) is read to its end: it is
retired only once it has not grown for `rotate_wait_s` counted from when the
rename was seen, and its size is checked once more just before.  At most
`max_open_files` files are open at once: the others wait their turn, and a
followed file at its end gives its descriptor up while others wait and is
opened again by identity (identity.py) when its turn comes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict

from streamer.core.ack import OrderedCommitter
from streamer.core.batch import Origin
from streamer.core.ndjson import Decoded
from streamer.pipeline.context import Context
from streamer.sources.fanout import Fanout
from streamer.sources.file.activity import REPORT_EVERY_S, FileActivity
from streamer.sources.file.checkpoint import (
    FileEntry,
    FileKey,
    contents_of,
    load_checkpoint,
    save_checkpoint,
)
from streamer.sources.file.claims import FileClaims
from streamer.sources.file.config import FileSourceConfig
from streamer.sources.file.copytruncate import CopyTruncation
from streamer.sources.file.globbing import expand_all
from streamer.sources.file.open_files import OpenFiles
from streamer.sources.file.opening import FileOpening
from streamer.sources.file.own_dirs import OwnDirs
from streamer.sources.file.stream_key import latest_generation, stream_key
from streamer.sources.file.tailed import Content, TailedFile, state_at_end
from streamer.sources.file.unreadable import UNREAD, UnreadableFiles
from streamer.sources.splitter import LineSplitter

log = logging.getLogger("streamer.source.file")
CLAIM_SCAN_S = 0.1

RETIRED_KEEP = 1000
# a file that grew is checked again this soon, the wait doubling up to
# poll_interval_ms while it stays still: a line written to a busy file waits
# milliseconds, an idle file costs no more checks than before
ACTIVE_POLL_S = 0.02


class FileSource(CopyTruncation, FileOpening):
    def __init__(self, name: str, cfg: FileSourceConfig, fanout: Fanout,
                 context: Context) -> None:
        self.name = name
        self._cfg = cfg
        self._fanout = fanout
        self._claims = FileClaims(context.data_dir.claims(name), context.shard)
        self._checkpoint_path = context.data_dir.checkpoint(name)
        self._tails: dict[FileKey, TailedFile] = {}
        self._retired: OrderedDict[FileKey, TailedFile] = OrderedDict()
        self._saved: dict[FileKey, FileEntry] = {}
        self._dirty = False
        self._open_files = OpenFiles(cfg.max_open_files)
        self._files_read = 0
        self._activity = FileActivity(name)
        self._unreadable = UnreadableFiles(name, fanout.stats, cfg.follow)
        self._failure: BaseException | None = None  # a reader's error: the source fails
        self._fences = context.fences
        self._own_dirs = OwnDirs(name, (*context.data_dir.written_dirs, *context.stage_dirs))
        # every read lands here, then its whole lines are copied out once
        # (LineSplitter.feed_from): one buffer for all files, as a read and
        # its copy run with no await between them
        self._read_buffer = bytearray(cfg.read_bytes)

    # -- checkpoints -------------------------------------------------------------
    def _load_checkpoints(self) -> None:
        self._saved.update(load_checkpoint(self._checkpoint_path))

    def save_checkpoint(self) -> None:
        if not self._dirty:
            return
        files = []
        for tail in self._tails.values():
            if tail.known:
                files.append(tail.checkpoint())
            elif tail.key in self._saved:  # waiting for its first open
                files.append(self._saved[tail.key])
        files.extend(t.checkpoint() for t in self._retired.values())
        save_checkpoint(self._checkpoint_path, self.name, files)
        self._dirty = False  # only once written: a failed write is retried next time

    def _advanced(self, _offset: int) -> None:
        self._dirty = True

    # -- discovery ---------------------------------------------------------------
    def _glob(self, startup: bool = False) -> list[str]:
        seen: dict[str, None] = {}
        for pattern, matched in expand_all(self._cfg.paths, self._cfg.exclude):
            if startup and not matched:
                log.warning("source %s: %s matches no file%s", self.name, pattern,
                            "; files that appear later are read" if self._cfg.follow else "")
            for path in matched:
                seen.setdefault(path, None)
        return list(seen)

    def _discover(self, startup: bool) -> None:
        self._claims.unclaimed.clear()
        for path in self._glob(startup):
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not os.path.isfile(path):
                continue
            key = (st.st_dev, st.st_ino)
            tail = self._tails.get(key)
            if tail is not None:
                tail.path = path  # renamed (rotated) but still ours
                tail.rotated = False
                continue
            if self._own_dirs.holds(path) or not self._claims.owns(key):
                continue  # streamer's own file, or another worker's
            start = st.st_size if startup and self._cfg.read_from == "end" else 0
            self._start(TailedFile(path, key[0], key[1], "", 0,
                                   OrderedCommitter(0, self._advanced), start=start))

    def _resume_rotated(self) -> None:
        """Checkpointed files no longer at a globbed path (rotated while the
        process was stopped): finished from their offsets."""
        for key, entry in list(self._saved.items()):
            if key in self._tails or entry.get("done"):
                continue
            del self._saved[key]
            if self._own_dirs.holds(entry["path"]):
                continue  # read by a version that did not skip them: not any more
            *earlier, last = contents_of(entry)  # copytruncate: earlier ones from copies
            committer = OrderedCommitter(last["offset"], self._advanced)
            self._start(TailedFile(entry["path"], key[0], key[1], last["fp"],
                                   last["fp_len"], committer, known=True, rotated=True,
                                   gen=last["gen"], earlier=[self._queued(c) for c in earlier]))

    def _start(self, tail: TailedFile) -> None:
        self._tails[tail.key] = tail
        self._dirty = True
        tail.task = asyncio.create_task(self._follow(tail), name=f"file:{tail.path}")
        tail.task.add_done_callback(self._reader_ended)

    def _reader_ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    # -- reading -----------------------------------------------------------------
    async def run(self) -> None:
        self._load_checkpoints()
        self._discover(startup=True)
        self._resume_rotated()
        try:
            if not self._cfg.follow:
                while self._claims.unclaimed:  # workers > 1: until every file has a reader
                    await asyncio.sleep(CLAIM_SCAN_S)
                    self._discover(startup=True)
                await self._read_all()
                if not self._files_read and not self._glob():
                    log.warning("source %s read no file: %s matched nothing", self.name,
                                ", ".join(self._cfg.paths))
                self._unreadable.report_end()
                return
            interval = self._cfg.glob_interval_ms / 1000
            while True:
                await asyncio.sleep(interval)
                if self._failure is not None:  # not one file silently left unread
                    raise self._failure
                self._discover(startup=False)
                self._activity.report()
        finally:
            for tail in list(self._tails.values()):
                if tail.task is not None and not tail.task.done():
                    tail.task.cancel()
            await asyncio.gather(*(t.task for t in self._tails.values() if t.task),
                                 return_exceptions=True)

    async def _read_all(self) -> None:
        """Every file to its end (follow = false), the activity line meanwhile."""
        tasks = [t.task for t in list(self._tails.values()) if t.task]
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=REPORT_EVERY_S,
                                               return_when=asyncio.FIRST_EXCEPTION)
            if any(not t.cancelled() and t.exception() for t in done):
                break  # raised by the gather below, as soon as it happened
            self._activity.report(final=not pending)
        await asyncio.gather(*(t for t in tasks if t.done()))

    async def _follow(self, tail: TailedFile) -> None:
        await self._open_files.acquire()
        try:
            offset = await self._open_when_readable(tail)
            if offset is None:
                self._lost(tail, tail.committer.committed)
                return
            if offset == UNREAD:  # its checkpoint entry stays (save_checkpoint)
                return
            self._files_read += 1
            if tail.earlier:  # copytruncate: contents before the file's, from their copies
                await self._read_earlier(tail, at_start=True)
                offset = tail.committer.committed
            await self._read(tail, offset)
            self._activity.finished()
        finally:
            self._close(tail)

    async def _read(self, tail: TailedFile, offset: int) -> None:
        cfg = self._cfg
        splitter = LineSplitter(offset, cfg.max_line_bytes)
        position = offset  # next byte to read
        fences = self._fences_after(tail, position)
        idle_since = time.monotonic()  # last growth seen (or the rename, when later)
        gone = False
        poll = cfg.poll_interval_ms / 1000
        wait = min(ACTIVE_POLL_S, poll)  # the next check of a file at its end
        while True:
            # a synchronous pread on the loop, as Fluent Bit's tail input does: a
            # read from the page cache takes well under a millisecond, while a
            # hop to a thread costs more in GIL hand-offs than the read itself
            want = cfg.read_bytes
            if fences:  # a replay below a stage's fence: no piece may straddle it
                while fences and fences[0] <= position:
                    fences.pop(0)
                if fences:
                    want = min(want, fences[0] - position)
            size = self._pread(tail.fd, want, position)
            if size:
                position += size
                self._fanout.stats.bytes += size
                await self._emit(tail, *splitter.feed_from(self._read_buffer, size))
                idle_since = time.monotonic()
                wait = min(ACTIVE_POLL_S, poll)
                await asyncio.sleep(0)  # one chunk, then let sinks and timers run
                continue
            if not cfg.follow:
                if tail.rotated or not splitter.cut_short():
                    await self._emit(tail, *splitter.finish())
                else:  # the checkpoint stays at the line's start
                    log.warning("%s ends with a line cut short at offset %d (no newline, not "
                                "JSON): left for the next run, a writer may still be writing "
                                "it", tail.path, splitter.offset)
                if tail.rotated:
                    self._retire(tail, position)
                return
            if (self._open_files.waiting and not gone and not tail.rotated
                    and time.monotonic() - idle_since >= poll):
                if not await self._give_way(tail):
                    await self._emit(tail, *splitter.finish())
                    self._lost(tail, position)
                    return
                continue
            await asyncio.sleep(wait)
            held = splitter.nul_held_at()
            if held is not None and self._filled_in(tail.fd, held, position):
                # NULs at the end written since (pwrite, mmap): read from the hole again
                position = splitter.rewind()
                fences = self._fences_after(tail, position)
                continue
            state = state_at_end(tail, position)
            if state == "grew":
                continue
            wait = min(wait * 2, poll)
            if state == "truncated":
                self._truncated_at(tail, splitter, position)
                await self._read_earlier(tail, at_start=False)
                log.warning("%s was truncated; reading it again from the start", tail.path)
                position, fences, gone = 0, [], False
                splitter = LineSplitter(position, cfg.max_line_bytes)
            elif state == "gone":
                if not gone:  # idle is counted from the rename on, not from before it
                    gone, idle_since = True, time.monotonic()
                elif (time.monotonic() - idle_since >= cfg.rotate_wait_s
                      and os.fstat(tail.fd).st_size <= position):
                    await self._emit(tail, *splitter.finish())
                    log.info("%s was rotated away and has not grown for %gs; done with it",
                             tail.path, cfg.rotate_wait_s)
                    self._retire(tail, position)
                    return
            else:
                gone = False

    def _filled_in(self, fd: int, start: int, end: int) -> bool:
        """Whether the NULs read at `start` (up to `end`) hold other bytes now; only
        the first read's worth is looked at: a writer fills a range from its start."""
        size = self._pread(fd, min(end - start, self._cfg.read_bytes), start)
        return self._read_buffer.count(b"\0", 0, size) != size

    def _pread(self, fd: int, size: int, position: int) -> int:
        """Up to `size` bytes at `position` into the read buffer; how many."""
        with memoryview(self._read_buffer) as view:
            return os.preadv(fd, (view[:size],), position)

    async def _give_way(self, tail: TailedFile) -> bool:
        """Close an idle file while others wait for a descriptor, and open it
        again by identity when its turn comes; False when it is gone."""
        self._close(tail)
        await self._open_files.acquire()
        found = await self._open_when_readable(tail)
        return found is not None

    async def _emit(self, tail: TailedFile, decoded: Decoded, start: int,
                    content: Content | None = None) -> None:
        """A chunk of the file's current content, or of `content` read from its copy."""
        end = start + len(decoded.block)
        of = content or tail
        committer = of.committer
        if of.stream is None:
            of.stream = self._stream_key(tail, complete=False)
        # kept: a stop delivers the whole chunk, so its checkpoint covers it (a chunk
        # cut by the stop would be read again whole: its delivered part twice)
        await self._fanout.emit(decoded, lambda sinks: committer.track(end, sinks),
                                Origin(self.name, tail.path, start, of.stream, end),
                                kept=True)

    def _stream_key(self, tail: TailedFile, complete: bool, fd: int = -1,
                    gen: int | None = None) -> str | None:
        """The file's stream key (None when `complete` and its first line is not
        written yet: then nothing of it can have been staged); `fd`: read the
        head from that copy of the file, `gen`: that content's truncations."""
        gen = tail.gen if gen is None else gen
        key = stream_key(tail.fd if fd < 0 else fd, tail.key, gen, complete)
        if key is None or gen:
            return key
        # no checkpoint says how often it was truncated: the latest generation staged
        return latest_generation(key, self._fences.keys(self.name))

    def _fences_after(self, tail: TailedFile, position: int) -> list[int]:
        if tail.stream is None:
            tail.stream = self._stream_key(tail, complete=True)
        if tail.stream is None:
            return []
        return [end for end in self._fences.of(self.name, tail.stream) if end > position]

    def _retire(self, tail: TailedFile, end: int) -> None:
        tail.end = end
        self._tails.pop(tail.key, None)
        self._retired[tail.key] = tail
        while len(self._retired) > RETIRED_KEEP:
            self._retired.popitem(last=False)
        self._dirty = True

    async def after_drain(self) -> None:
        """Checkpoints are saved by the pipeline; nothing else to settle."""

    def finish(self) -> None:
        """Close every file after the source stopped; keep their checkpoints."""
        for tail in list(self._tails.values()):
            self._close(tail)

    def close(self) -> None:
        """No metrics of its own to take back (its counters are the fanout's)."""
