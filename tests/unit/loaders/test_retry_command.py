"""`streamer loads retry`: failed windows of every process's journal (the single
process's and each worker's), only for stage sinks with a load."""

import orjson

from streamer.config.root import parse_config
from streamer.loaders.retry_command import retry_windows
from tests.helpers import config_data, journal


def write_journal(path, *events) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))


def test_failed_windows_of_every_process_are_marked(tmp_path):
    sinks = {"loaded": {"type": "stage", "url": "file:///tmp/stage/", "columns": ["a"],
                        "load": {"type": "duckdb", "table": "t"}},
             "staged": {"type": "stage", "url": "file:///tmp/other/", "columns": ["a"]}}
    cfg = parse_config(config_data(sinks=sinks, data_dir=str(tmp_path)), {})
    write_journal(tmp_path / "journal" / "loaded.ndjson",
                  {"window": "w-1", "state": "failed", "files": ["part-00001.csv"],
                   "error": "file gone"},
                  {"window": "w-2", "state": "loaded"})
    write_journal(tmp_path / "shards" / "1" / "journal" / "loaded.ndjson",
                  {"window": "w-3", "state": "failed", "error": "job ERROR"})
    write_journal(tmp_path / "journal" / "staged.ndjson",
                  {"window": "w-4", "state": "failed"})  # no load: not ours to retry

    lines, code = retry_windows(cfg, [])

    assert code == 0
    assert lines == ["sink loaded: window w-1 marked for retry (1 files; was: file gone)",
                     "sink loaded: window w-3 marked for retry (0 files; was: job ERROR)",
                     "2 windows marked for retry: streamer loads them when it next starts "
                     "(restart a running one)"]
    assert journal(tmp_path, "loaded")["w-1"]["state"] == "closed"
    assert journal(tmp_path / "shards" / "1", "loaded")["w-3"]["state"] == "closed"
    assert journal(tmp_path, "staged")["w-4"]["state"] == "failed"

    lines, code = retry_windows(cfg, ["w-2"])
    assert code == 1 and lines[0] == f"window w-2: no failed window of that id in {tmp_path}"
    assert lines[-1] == "no failed windows"
