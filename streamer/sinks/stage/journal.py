"""The load-window journal: data_dir/journal/<sink>.ndjson.

An append-only log of window state changes, fsynced before the action it
announces (a window is journaled `open` before its first file is moved into
it, a load's id before the load job is created), so after a crash every
window is found again and resumed, never loaded twice.

An event the disk does not take (data_dir full) is kept, in order, and written
first by the next append or `flush`; `behind` says so, and what the event
announces waits until `flush` passes (WindowKeeper.journaled), so a full disk
holds the sink back instead of stopping the run.
"""

from __future__ import annotations

import fcntl
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streamer.datadir.files import StateFileUnreadable, write_atomic

FINAL_STATES = frozenset({"loaded", "failed", "staged"})
KEEP_FINAL = 200  # loaded and staged windows kept by compaction; failed ones stay all
# a running process compacts again once this many loaded/staged windows are held (a
# daemon closes one every window_age_s: before 2026-12-05 only a start compacted)
COMPACT_AT = 3 * KEEP_FINAL
MAX_FENCES = 100_000  # streams whose fence compaction keeps (the most recently staged)
# what a failed attempt left in a window's journal entry: a retry starts without it
# (a new Timestream task, new Data Exchange jobs; finished jobs stay done)
ATTEMPT_KEYS = ("error", "client_token", "task_id", "task_status", "jobs")


@dataclass
class Window:
    id: str
    state: str = "open"
    files: list[str] = field(default_factory=list)
    records: int = 0
    bytes: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class Journal:
    def __init__(self, path: Path) -> None:
        self._path = path
        self.windows: dict[str, Window] = {}
        # exactly-once: complete files per window, and the fence of each stream
        self.completed: dict[str, list[dict[str, Any]]] = {}
        self.fences: dict[tuple[str, str], int] = {}
        self._fd: int | None = None
        self._unwritten = bytearray()  # events the disk has not taken yet, in order
        # written since the last fsync that passed, and the file's size then: a failed
        # fsync cuts the file back and writes them again (Linux marks the pages whose
        # write-back failed clean: a second fsync would pass without them)
        self._unsynced = bytearray()
        self._synced_size = 0
        self._rewrite = False
        self._final_since_compaction = 0
        self.write_error: OSError | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def behind(self) -> bool:
        """Events appended that are not on disk yet (the last write or sync failed)."""
        return bool(self._unwritten) or bool(self._unsynced) or self._rewrite

    def open(self) -> list[Window]:
        """Replay the journal, compact it, and return the unfinished windows."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self.windows, self.completed, self.fences = {}, {}, {}
        self.replay()
        self._compact()
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._synced_size = os.fstat(self._fd).st_size
        return [w for w in self.windows.values() if not w.final]

    def replay(self) -> None:
        """Read the journal's events into `windows` (without opening it for appends)."""
        if self._path.exists():
            for line in self._path.read_bytes().splitlines():
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn last line from a crash mid-append
                try:
                    self._apply(event)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise StateFileUnreadable(
                        self._path, "stage journal", f"event {line[:200]!r}: {exc!r}",
                        "move it away: the windows it lists are then forgotten (their "
                        "staged files stay, not loaded) and, with exactly_once, records "
                        "may be staged twice") from None

    def record(self, window: Window, **changes: Any) -> None:
        event = {"window": window.id, **changes}
        self._apply(event, window)
        self._append(event)
        if changes.get("state") in FINAL_STATES:
            self._final_since_compaction += 1
            if self._final_since_compaction >= COMPACT_AT - KEEP_FINAL:
                self._compact_running()

    def _compact_running(self) -> None:
        """Compact while the journal is open, from what is on disk (under an flock that
        `retry_failed` takes too: events another process appended are kept), then
        forget in memory the final windows compaction dropped. Skipped while the disk
        refuses events (tried again at the next final window)."""
        if self._fd is None or not self.flush():
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            on_disk = Journal(self._path)
            on_disk.replay()
            on_disk._compact()
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:  # a full disk: the journal goes on as it was
            self.write_error = exc
            return
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = fd
        self._synced_size = os.fstat(fd).st_size  # written whole and fsynced
        self._final_since_compaction = 0
        for window_id in [w.id for w in self.windows.values()
                          if w.final and w.state != "failed" and w.id not in on_disk.windows]:
            del self.windows[window_id]
        self.completed = {w: done for w, done in self.completed.items()
                          if w in self.windows and not self.windows[w].final}
        self.fences = on_disk.fences

    def record_completed(self, window: Window, completed: dict[str, Any]) -> None:
        """A complete stage file (exactly-once mode), durable before its acks."""
        event = {"window": window.id, "completed": completed}
        self._apply(event)
        self._append(event)

    def _append(self, event: dict[str, Any]) -> None:
        self._unwritten += orjson.dumps(event) + b"\n"
        self.flush()

    def flush(self) -> bool:
        """Write and fsync what is unwritten; False (and `write_error`) if the disk
        refused it: the rest stays, never written twice or torn by a retry."""
        try:
            if self._rewrite:
                self._write_again()
            self._write_unwritten()
            if self._unsynced:
                try:
                    os.fsync(self._fd)
                except OSError:
                    self._rewrite = True
                    raise
                self._synced_size = os.fstat(self._fd).st_size
                self._unsynced.clear()
        except OSError as exc:
            self.write_error = exc
            return False
        self.write_error = None
        return True

    def _write_unwritten(self) -> None:
        while self._unwritten:
            written = os.write(self._fd, self._unwritten)
            self._unsynced += self._unwritten[:written]
            del self._unwritten[:written]

    def _write_again(self) -> None:
        """After a failed fsync: the file cut back to its size at the last fsync that
        passed and written again -- what this process wrote since, then the events
        another process (`retry_failed`) appended since -- all under the flock
        `retry_failed` appends under (before 2026-12-05 the cut-back dropped a
        `loads retry`'s events: its windows stayed failed)."""
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            again = bytes(self._unsynced) + self._appended_by_others()
            os.ftruncate(self._fd, self._synced_size)
            self._unsynced = bytearray()
            self._unwritten[:0] = again
            self._rewrite = False
            self._write_unwritten()  # nothing of another process lands in between
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _appended_by_others(self) -> bytes:
        """The whole events after the last synced size that this process did not write
        (its own are rewritten from memory: pages whose write-back failed may read
        back as anything once the cache drops them)."""
        try:
            fd = os.open(self._path, os.O_RDONLY)
        except FileNotFoundError:
            return b""
        try:
            if os.fstat(fd).st_ino != os.fstat(self._fd).st_ino:
                return b""
            tail = os.pread(fd, max(0, os.fstat(fd).st_size - self._synced_size),
                            self._synced_size)
        finally:
            os.close(fd)
        mine = Counter(bytes(self._unsynced).splitlines(keepends=True))
        others = []
        for line in tail.splitlines(keepends=True):
            if mine[line] > 0:
                mine[line] -= 1
            elif line.endswith(b"\n") and _an_event(line):
                others.append(line)
        return b"".join(others)

    def failed(self) -> list[Window]:
        return [w for w in self.windows.values() if w.state == "failed"]

    def close(self) -> None:
        """Never raises: events the disk still refuses are lost with the process, and
        what they announced was never done (acks held, loads not started)."""
        if self._fd is not None:
            self.flush()
            os.close(self._fd)
            self._fd = None

    def _apply(self, event: dict[str, Any], window: Window | None = None) -> None:
        if "fences" in event:
            for source, stream, end in event["fences"]:
                self.fences[(source, stream)] = max(end, self.fences.get((source, stream), -1))
            return
        if "completed" in event:
            done = event["completed"]
            self.completed.setdefault(event["window"], []).append(done)
            fence = (done["source"], done["stream"])
            if done["stream"] is not None:
                self.fences[fence] = max(done["end"], self.fences.pop(fence, -1))  # latest last
            return
        window = window or self.windows.get(event["window"]) or Window(event["window"])
        self.windows[window.id] = window
        for key, value in event.items():
            if key == "window":
                continue
            if hasattr(window, key) and key != "info":
                setattr(window, key, value)
            else:
                window.info[key] = value

    def _compact(self) -> None:
        final = [w for w in self.windows.values() if w.final and w.state != "failed"]
        for window in final[:-KEEP_FINAL]:
            del self.windows[window.id]
        while len(self.fences) > MAX_FENCES:
            del self.fences[next(iter(self.fences))]
        lines = []
        if self.fences:
            fences = [[source, stream, end] for (source, stream), end in self.fences.items()]
            lines.append(orjson.dumps({"fences": fences}) + b"\n")
        for w in self.windows.values():
            event = {"window": w.id, "state": w.state, "files": w.files, "records": w.records,
                     "bytes": w.bytes, **w.info}
            lines.append(orjson.dumps(event) + b"\n")
            if not w.final:  # what makes up a window left open
                lines.extend(orjson.dumps({"window": w.id, "completed": done}) + b"\n"
                             for done in self.completed.get(w.id, []))
        self.completed = {w: done for w, done in self.completed.items()
                          if w in self.windows and not self.windows[w].final}
        write_atomic(self._path, b"".join(lines))


def _an_event(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def retry_failed(path: Path, window_ids: list[str]) -> tuple[list[Window], list[str]]:
    """Re-mark failed windows of the journal at `path` as `closed` (all of them when
    `window_ids` is empty) by appending one event each: the windows and the ids that
    are not failed windows there.

    Appends only, fsynced, each event one write to a file opened O_APPEND: a
    process that holds the journal open keeps appending its own events after
    them, and loads the windows when it next starts (never twice: loaders skip a
    window they loaded, DuckDB by its marker row, Timestream by its ClientToken).
    """
    journal = Journal(path)
    journal.replay()
    failed = {w.id: w for w in journal.failed()}
    wanted = window_ids or list(failed)
    chosen = [failed[i] for i in wanted if i in failed]
    if chosen:
        # a torn last line (a crash mid-append) must not swallow the first event
        torn = path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
        events = b"\n" * torn + b"".join(orjson.dumps(
            {"window": w.id, "state": "closed", **_attempt_cleared(w),
             "retries": int(w.info.get("retries") or 0) + 1}) + b"\n" for w in chosen)
        _append_beside_a_running_process(path, events)
    return chosen, [i for i in wanted if i not in failed]


def _attempt_cleared(window: Window) -> dict[str, None]:
    """What a retry forgets: a window that failed at `max_wait_s` keeps its task / jobs
    (they may have ended meanwhile: followed again, not created a second time)."""
    if window.info.get("timed_out"):
        return {"error": None, "timed_out": None}
    return dict.fromkeys(ATTEMPT_KEYS)


def _append_beside_a_running_process(path: Path, events: bytes) -> None:
    """Append under the flock a running process takes to compact its journal: once the
    lock is held, the file appended to must still be the journal (a compaction replaces
    it by a rename), else the new one is opened."""
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                os.write(fd, events)
                os.fsync(fd)
                return
        finally:
            os.close(fd)
