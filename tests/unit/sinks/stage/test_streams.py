from streamer.core.ack import Ack
from streamer.core.batch import Origin, Piece
from streamer.core.lines import Lines
from streamer.sinks.stage.journal import Journal, Window
from streamer.sinks.stage.streams import file_marker, group_pieces, stream_stem


def piece(source, key, start, end, n=2):
    return Piece(None, Lines.of([b'{"v":1}'] * n), Ack(1, None),
                 Origin(source, "path", start, key, end))


def test_replayed_pieces_up_to_the_fence_are_skipped_the_rest_grouped_by_stream():
    pieces = [piece("f", "k1", 0, 10), piece("f", "k2", 0, 5), piece("f", "k1", 10, 20),
              piece("f", "k1", 20, 30), piece("s", None, 0, -1)]
    groups, skipped, _ = group_pieces(pieces, {("f", "k1"): 20})
    assert skipped == pieces[:1] + pieces[2:3]
    assert groups == {("f", "k2"): [pieces[1]], ("f", "k1"): [pieces[3]],
                      ("s", None): [pieces[4]]}


def test_a_straddling_piece_is_written_not_lost():
    straddling = piece("f", "k", 5, 15)
    groups, skipped, _ = group_pieces([straddling], {("f", "k"): 10})
    assert not skipped and groups == {("f", "k"): [straddling]}


def test_file_names_and_markers():
    stem = stream_stem(("f", "1.2.0.ab"), 1234)
    assert stem == stream_stem(("f", "1.2.0.ab"), 1234) != stream_stem(("g", "1.2.0.ab"), 1234)
    assert stem.endswith("-000000000001234")
    assert stream_stem(("stdin", None), 0) is None
    name = f"part-{stem}.csv"
    assert file_marker("w1", f"s3://b/p/w1/{name}") == name == file_marker("w2", name)
    assert file_marker("w1", "/stage/w1/part-00001.csv") == "w1/part-00001.csv"


def test_completion_records_and_fences_survive_compaction(tmp_path):
    path = tmp_path / "j.ndjson"
    journal = Journal(path)
    journal.open()
    closed, still_open = Window("w1"), Window("w2")
    journal.record(closed, state="open", exactly_once=True)
    journal.record_completed(closed, {"file": "a", "source": "f", "stream": "k1", "start": 0,
                                      "end": 100, "records": 3, "bytes": 30})
    journal.record(closed, state="loaded", files=["a"])
    journal.record(still_open, state="open", exactly_once=True)
    journal.record_completed(still_open, {"file": "b", "source": "f", "stream": "k1",
                                          "start": 100, "end": 250, "records": 4, "bytes": 40})
    journal.record_completed(still_open, {"file": "c", "source": "s", "stream": None,
                                          "start": 0, "end": -1, "records": 1, "bytes": 9})
    journal.close()
    for _ in range(2):  # each open compacts
        again = Journal(path)
        unfinished = again.open()
        again.close()
        assert [w.id for w in unfinished] == ["w2"]
        assert unfinished[0].info["exactly_once"] is True
        assert again.fences == {("f", "k1"): 250}
        assert [d["file"] for d in again.completed["w2"]] == ["b", "c"]
        assert "w1" not in again.completed
