"""WindowKeeper: names handed out at file start, sealing, closing once files are complete."""

from pathlib import Path

import orjson
import pytest

from streamer.observability.metrics import SinkStats
from streamer.sinks.stage.journal import Journal
from streamer.sinks.stage.windows import WindowKeeper


def keeper(tmp_path: Path, **limits) -> tuple[WindowKeeper, Journal]:
    journal = Journal(tmp_path / "journal.ndjson")
    journal.open()
    opts = {"max_files": 3, "max_bytes": 1000, "max_age_s": 60.0, **limits}
    return WindowKeeper("st", "7", journal, None, SinkStats(), **opts), journal


def events(tmp_path: Path) -> list[dict]:
    return [orjson.loads(line) for line in (tmp_path / "journal.ndjson").read_bytes().split()]


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
    windows.close_current()
    assert windows.deadline() is None and windows.pending == 1
    assert events(tmp_path)[-1] == {"window": empty.id, "state": "staged", "files": [],
                                    "records": 0, "bytes": 0}


@pytest.mark.asyncio
async def test_sealed_window_waits_for_outstanding_files_before_loading(tmp_path):
    windows, journal = keeper(tmp_path)
    window, name = windows.name_file()
    windows.close_current()
    assert windows.pending == 0  # its file is still being completed
    windows.add_file(name, 5, 1, window)
    windows.finish()
    await windows.run_loads(lambda w: [])
    assert journal.windows[window.id].state == "staged"
