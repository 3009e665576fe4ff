"""The load-window journal: failed windows outlive compaction; `loads retry` re-marks
them by appending, also beside a process that holds the journal open."""

import orjson

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
