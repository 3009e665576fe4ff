"""WindowKeeper: names handed out at file start, sealing, closing once files are
complete, loads retried with the shared backoff."""

import logging
import random
from pathlib import Path

import orjson
import pytest

from streamer.core.retry import Backoff
from streamer.loaders.base import Loader, PermanentLoadError
from streamer.observability.metrics import SinkStats
from streamer.sinks.stage.journal import Journal, Window
from streamer.sinks.stage.windows import WindowKeeper
from tests.helpers.clock import FakeClock


def keeper(tmp_path: Path, loader: Loader | None = None,
           **options) -> tuple[WindowKeeper, Journal]:
    journal = Journal(tmp_path / "journal.ndjson")
    journal.open()
    opts = {"max_files": 3, "max_bytes": 1000, "max_age_s": 60.0, **options}
    return WindowKeeper("st", "7", journal, loader, SinkStats(), **opts), journal


def events(tmp_path: Path) -> list[dict]:
    return [orjson.loads(line) for line in (tmp_path / "journal.ndjson").read_bytes().splitlines()]


def test_ids_are_unique_sortable_and_name_the_instance(tmp_path):
    windows, _ = keeper(tmp_path)
    ids = [windows.new_id() for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000
    assert all(i.endswith("Z-7") and len(i) == len("20240101T000000000000Z-7") for i in ids)


def test_a_full_window_closes_when_its_last_named_file_completes(tmp_path):
    windows, _ = keeper(tmp_path)
    names = [windows.name_file() for _ in range(3)]
    first = names[0][0]
    assert [n for _, n in names] == ["part-00001.csv", "part-00002.csv", "part-00003.csv"]
    assert all(w is first for w, _ in names) and windows.current is None
    nxt, name = windows.name_file(".csv.gz")  # sealed: the next file opens a new window
    assert nxt is not first and name == "part-00001.csv.gz"
    windows.add_file("part-00002.csv", 10, 5, first)  # completions may come out of order
    windows.add_file("part-00001.csv", 10, 5, first)
    assert windows.pending == 0 and windows.sealed == 1
    windows.add_file("part-00003.csv", 10, 5, first)
    assert windows.pending == 1 and windows.sealed == 0
    closed = [e for e in events(tmp_path) if e.get("state") == "closed"]
    assert closed == [{"window": first.id, "state": "closed", "records": 15, "bytes": 30,
                       "files": ["part-00001.csv", "part-00002.csv", "part-00003.csv"]}]


def test_bytes_and_age_seal_and_an_empty_window_is_staged(tmp_path):
    windows, _ = keeper(tmp_path, max_bytes=100)
    window, name = windows.name_file()
    windows.add_file(name, 150, 1, window)
    assert windows.current is None and windows.pending == 1
    windows.ensure_open()
    assert windows.deadline() is not None
    empty = windows.current
    windows.seal_current()
    assert windows.deadline() is None and windows.pending == 1
    assert events(tmp_path)[-1] == {"window": empty.id, "state": "staged", "files": [],
                                    "records": 0, "bytes": 0}


@pytest.mark.asyncio
async def test_sealed_window_waits_for_outstanding_files_before_loading(tmp_path):
    windows, journal = keeper(tmp_path)
    window, name = windows.name_file()
    windows.seal_current()
    assert windows.pending == 0  # its file is still being completed
    windows.add_file(name, 5, 1, window)
    windows.finish()
    await windows.run_loads(lambda w: [])
    assert journal.windows[window.id].state == "staged"



class FlakyLoader:
    """Fails `failures` times per window (PermanentLoadError for window ids in
    `refuse`), then loads."""

    def __init__(self, failures: int, refuse: tuple[str, ...] = ()) -> None:
        self.failures = failures
        self.refuse = refuse
        self.calls: list[tuple[str, list[str]]] = []

    async def load(self, window: Window, files: list[str], progress) -> dict:
        self.calls.append((window.id, files))
        if window.id in self.refuse:
            raise PermanentLoadError("column x: not a number")
        if sum(w == window.id for w, _ in self.calls) <= self.failures:
            raise ConnectionError("database unreachable")
        progress(task="t-1")
        return {"rows": 2 * len(files)}


@pytest.mark.asyncio
async def test_a_failing_load_is_retried_with_the_backoff_until_it_passes(
        tmp_path, caplog):
    clock = FakeClock()
    backoff = Backoff(1.0, 4.0, rng=random.Random(3), clock=clock, sleep=clock.sleep)
    loader = FlakyLoader(failures=4, refuse=("w-refused",))
    windows, journal = keeper(tmp_path, loader, load_backoff=backoff)
    stats = windows._stats
    for window_id in ("w-1", "w-refused", "w-2"):
        windows.resume(Window(window_id))
    windows.finish()
    with caplog.at_level(logging.WARNING, logger="streamer.sink.windows"):
        await windows.run_loads(lambda w: [f"{w.id}/part-00001.csv"])
    # w-1: four failures, 1 2 4 4 s ceilings (full jitter), then loaded; the refused
    # window is not retried; w-2 starts again from the first delay
    assert [w for w, _ in loader.calls] == ["w-1"] * 5 + ["w-refused"] + ["w-2"] * 5
    ceilings = [1.0, 2.0, 4.0, 4.0] * 2
    assert len(clock.sleeps) == 8
    assert all(0 < s <= c for s, c in zip(clock.sleeps, ceilings, strict=True))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"loading window w-{n} of sink st failed (database unreachable); "
                        f"retrying in {s:.1f}s"
                        for n, s in zip([1] * 4 + [2] * 4, clock.sleeps, strict=True)]
    assert stats.retried == 8 and stats.failing_since is None
    assert stats.extra == {"windows_loaded": 2, "rows_loaded": 4, "windows_failed": 1}
    error = stats.failed_windows["w-refused"]
    assert list(stats.failed_windows) == ["w-refused"]
    assert "window w-refused of sink st (1 files: w-refused/part-00001.csv)" in error
    assert error.endswith("failed: column x: not a number")
    assert journal.windows["w-refused"].info["error"] == error
    assert {w: journal.windows[w].state for w in ("w-1", "w-refused", "w-2")} == {
        "w-1": "loaded", "w-refused": "failed", "w-2": "loaded"}
    assert [e for e in events(tmp_path) if e["window"] == "w-1"] == [
        {"window": "w-1", "state": "loading"}, {"window": "w-1", "task": "t-1"},
        {"window": "w-1", "state": "loaded", "rows": 2}]


@pytest.mark.asyncio
async def test_failed_windows_of_earlier_runs_are_reported_until_they_load(tmp_path):
    loader = FlakyLoader(failures=0)
    windows, _ = keeper(tmp_path, loader)
    earlier = Window("w-old", state="failed", info={"error": "file gone"})
    windows.known_failed([earlier, Window("w-other", state="failed")])
    assert windows._stats.failed_windows == {"w-old": "file gone", "w-other": "failed"}
    windows.resume(Window("w-old", state="closed"))  # `streamer loads retry`
    windows.finish()
    await windows.run_loads(lambda w: [f"{w.id}/part-00001.csv"])
    assert windows._stats.failed_windows == {"w-other": "failed"}
