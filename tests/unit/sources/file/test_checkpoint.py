"""The file source's checkpoint file: what it holds, and how it is read back."""

from __future__ import annotations

import orjson
import pytest

from streamer.datadir.files import StateFileUnreadable
from streamer.sources.file.checkpoint import (
    contents_of,
    load_checkpoint,
    resume_offsets,
    save_checkpoint,
)

A = {"path": "/in/a.ndjson", "dev": 8, "ino": 12, "fp": "ab", "fp_len": 256, "offset": 300}
B = {"path": "/in/b.ndjson", "dev": 8, "ino": 13, "fp": "cd", "fp_len": 40, "offset": 40}


def test_saved_entries_load_back_by_device_and_inode(tmp_path) -> None:
    path = tmp_path / "checkpoints" / "files.json"
    save_checkpoint(path, "files", [A, B])
    assert orjson.loads(path.read_bytes()) == {"version": 1, "source": "files",
                                               "files": [A, B]}
    assert load_checkpoint(path) == {(8, 12): A, (8, 13): B}
    assert resume_offsets(path) == {(8, 12): 300, (8, 13): 40}


def test_no_checkpoint_yet_means_nothing_read(tmp_path) -> None:
    assert load_checkpoint(tmp_path / "files.json") == {}
    assert resume_offsets(tmp_path / "files.json") == {}


def test_a_malformed_checkpoint_stops_the_source_but_not_an_estimate(tmp_path) -> None:
    garbled = tmp_path / "garbled.json"
    garbled.write_bytes(b"{not json")
    partial = tmp_path / "partial.json"
    partial.write_bytes(orjson.dumps({"files": [A, {"path": "x"}, "?"]}))
    with pytest.raises(StateFileUnreadable, match=r"garbled\.json: not a checkpoint"):
        load_checkpoint(garbled)
    with pytest.raises(StateFileUnreadable, match=r"partial\.json: not a checkpoint.*no 'dev'"):
        load_checkpoint(partial)
    assert resume_offsets(garbled) == {}
    assert resume_offsets(partial) == {(8, 12): 300}


# as main (88bb8dc) wrote it for a file copy-truncated twice: one content, no `then`
WRITTEN_BEFORE_QUEUES = {"path": "/in/app.log", "dev": 8, "ino": 14, "fp": "ef",
                         "fp_len": 256, "offset": 5750, "gen": 2}


def test_an_entry_names_the_queue_of_contents_oldest_first(tmp_path) -> None:
    queued = {**WRITTEN_BEFORE_QUEUES,
              "then": [{"fp": "01", "fp_len": 256, "offset": 0, "gen": 3},
                       {"fp": "02", "fp_len": 70, "offset": 70, "gen": 4}]}
    path = tmp_path / "files.json"
    save_checkpoint(path, "files", [queued])
    loaded = load_checkpoint(path)
    assert loaded == {(8, 14): queued}
    assert contents_of(loaded[(8, 14)]) == [
        {"fp": "ef", "fp_len": 256, "offset": 5750, "gen": 2},
        {"fp": "01", "fp_len": 256, "offset": 0, "gen": 3},
        {"fp": "02", "fp_len": 70, "offset": 70, "gen": 4}]
    assert resume_offsets(path) == {(8, 14): 70}  # the file holds the last content


def test_an_entry_written_before_queues_is_one_content(tmp_path) -> None:
    path = tmp_path / "files.json"
    path.write_bytes(orjson.dumps({"version": 1, "source": "files",
                                   "files": [WRITTEN_BEFORE_QUEUES, A]}))
    loaded = load_checkpoint(path)
    assert contents_of(loaded[(8, 14)]) == [{"fp": "ef", "fp_len": 256, "offset": 5750,
                                             "gen": 2}]
    assert contents_of(loaded[(8, 12)]) == [{"fp": "ab", "fp_len": 256, "offset": 300,
                                             "gen": 0}]


def test_a_queued_content_without_an_integer_offset_is_refused(tmp_path) -> None:
    path = tmp_path / "files.json"
    bad = {**A, "then": [{"fp": "01", "fp_len": 256, "offset": "0", "gen": 1}]}
    path.write_bytes(orjson.dumps({"files": [bad]}))
    with pytest.raises(StateFileUnreadable, match="then: fp_len, offset and gen"):
        load_checkpoint(path)
