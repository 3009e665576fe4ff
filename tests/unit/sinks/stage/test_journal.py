"""The load-window journal: failed windows outlive compaction; `loads retry` re-marks
them by appending, also beside a process that holds the journal open."""

import orjson
import pytest

from streamer.sinks.stage import journal as journal_module
from streamer.sinks.stage.journal import KEEP_FINAL, Journal, Window, retry_failed


def test_compaction_keeps_every_failed_window(tmp_path):
    path = tmp_path / "st.ndjson"
    journal = Journal(path)
    journal.open()
    journal.record(Window("w-0000-failed"), state="failed", error="gone")
    for n in range(KEEP_FINAL + 5):
        journal.record(Window(f"w-{n + 1:04d}"), state="loaded")
    journal.close()
    again = Journal(path)
    assert again.open() == []
    assert [w.id for w in again.failed()] == ["w-0000-failed"]
    assert sum(w.state == "loaded" for w in again.windows.values()) == KEEP_FINAL
    again.close()


def test_retry_reopens_failed_windows_without_their_last_attempt(tmp_path):
    path = tmp_path / "st.ndjson"
    running = Journal(path)  # a daemon holding the journal open
    running.open()
    failed = Window("w-1")
    running.record(failed, state="closed", files=["part-00001.csv"], records=3)
    running.record(failed, state="failed", task_id="t-9", error="task t-9 FAILED")
    running.record(Window("w-2"), state="loaded")

    chosen, unknown = retry_failed(path, ["w-1", "w-2", "w-3"])
    running.record(Window("w-4"), state="open")  # the daemon appends after it
    running.close()

    assert [w.id for w in chosen] == ["w-1"] and unknown == ["w-2", "w-3"]
    restarted = Journal(path)
    (window, reopened) = restarted.open()
    assert (reopened.id, reopened.state) == ("w-4", "open")
    assert (window.id, window.state, window.files) == ("w-1", "closed", ["part-00001.csv"])
    assert window.info == {"error": None, "client_token": None, "task_id": None,
                           "task_status": None, "jobs": None,
                           "retries": 1}
    assert restarted.failed() == []
    restarted.close()
    assert retry_failed(path, []) == ([], [])


def test_retry_after_a_torn_last_line_keeps_its_own_event(tmp_path):
    path = tmp_path / "st.ndjson"
    path.write_bytes(orjson.dumps({"window": "w-1", "state": "failed"}) + b'\n{"window": "w')
    (window,), _ = retry_failed(path, [])
    assert window.id == "w-1"
    events = [orjson.loads(line) for line in path.read_bytes().splitlines()
              if line.startswith(b"{") and line.endswith(b"}")]
    assert events[-1]["window"] == "w-1" and events[-1]["state"] == "closed"


KEEP, COMPACT_AT = 5, 15  # small stand-ins for KEEP_FINAL and COMPACT_AT: fsyncs are slow


@pytest.fixture()
def small_bounds(monkeypatch):
    monkeypatch.setattr(journal_module, "KEEP_FINAL", KEEP)
    monkeypatch.setattr(journal_module, "COMPACT_AT", COMPACT_AT)


def _load_one(journal: Journal, n: int) -> None:
    """One window's life in a daemon: opened, a complete file (exactly-once), closed,
    loaded."""
    window = Window(f"w-{n:06d}")
    journal.record(window, state="open", exactly_once=True)
    journal.record_completed(window, {"source": "logs", "stream": f"s{n}", "end": n,
                                      "file": f"part-{n}.csv"})
    journal.record(window, state="closed", files=[f"part-{n}.csv"], records=1, bytes=9)
    journal.record(window, state="loaded", rows=1)


def test_a_running_journal_stays_bounded_in_memory_and_on_disk(tmp_path, small_bounds):
    """A daemon closes a window every `window_age_s` for months: before session 15 the
    journal was compacted only at start, so its file and the windows held in memory
    grew by every window ever loaded until a restart."""
    path = tmp_path / "st.ndjson"
    journal = Journal(path)
    journal.open()
    early = Window("w-000000-failed")
    journal.record(early, state="failed", error="gone")
    waiting = Window("w-000000-open")  # a window still open all along
    journal.record(waiting, state="open")
    sizes = []
    for n in range(1, 20 * KEEP):
        _load_one(journal, n)
        sizes.append(path.stat().st_size)
    assert len(journal.windows) <= COMPACT_AT + 3  # + the failed, the open, the current
    assert set(journal.completed) <= {"w-000000-open"}
    assert max(sizes[-5 * KEEP:]) < 3 * max(sizes[:5 * KEEP]), sizes[::KEEP]
    journal.record(waiting, state="closed", files=["part-x.csv"], records=2)
    journal.close()

    again = Journal(path)
    (unfinished,) = again.open()
    assert (unfinished.id, unfinished.state, unfinished.files) == \
        ("w-000000-open", "closed", ["part-x.csv"])
    assert [w.id for w in again.failed()] == ["w-000000-failed"]
    loaded = sorted(w.id for w in again.windows.values() if w.state == "loaded")
    assert loaded == [f"w-{n:06d}" for n in range(20 * KEEP - KEEP,
                                                   20 * KEEP)]
    assert again.fences[("logs", f"s{20 * KEEP - 1}")] == 20 * KEEP - 1
    again.close()


def test_loads_retry_beside_a_daemon_compacting_its_journal_is_kept(tmp_path, small_bounds):
    path = tmp_path / "st.ndjson"
    running = Journal(path)
    running.open()
    running.record(Window("w-000000"), state="failed", error="gone")
    (retried,), _ = retry_failed(path, [])  # `streamer loads retry` from a shell
    assert retried.id == "w-000000"
    for n in range(1, 2 * COMPACT_AT):  # the daemon compacts meanwhile
        _load_one(running, n)
    running.close()

    restarted = Journal(path)
    (window,) = restarted.open()
    assert (window.id, window.state, window.info["retries"]) == ("w-000000", "closed", 1)
    restarted.close()
