"""Putting the typed query's CSV rows and the full query's back in order."""

from __future__ import annotations

from streamer.sinks.stage.csv_rows import interleave, split_rows


def test_rows_split_at_their_ends_only_when_no_cell_holds_one() -> None:
    assert split_rows(b'a,1\r\n"b\nc",2\r\n', 2) == [b"a,1", b'"b\nc",2']
    assert split_rows(b"", 0) == []
    assert split_rows(b'"x\r\ny",1\r\n', 1) is None  # 2 line ends for 1 row


def test_placed_rows_go_where_they_are_told() -> None:
    kept = [b"k0", b"k1", b"k2"]
    assert interleave(kept, [b"p0", b"p3", b"p5"], [0, 3, 5]) == (
        b"p0\r\nk0\r\nk1\r\np3\r\nk2\r\np5\r\n")
    assert interleave(kept, [], []) == b"k0\r\nk1\r\nk2\r\n"
    assert interleave([], [b"p0"], [0]) == b"p0\r\n"
    assert interleave([], [], []) == b""
