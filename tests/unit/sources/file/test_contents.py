"""A copy-truncated file's contents in its checkpoint entry: each one not read and
acknowledged yet, oldest first, the file's current one last."""

from __future__ import annotations

from streamer.core.ack import OrderedCommitter
from streamer.sources.file.tailed import Content, TailedFile


def tail_with(*earlier: Content) -> TailedFile:
    tail = TailedFile("/in/app.log", 8, 14, "cc", 256, OrderedCommitter(120), gen=3)
    tail.earlier = list(earlier)
    return tail


def content(fp: str, gen: int, committed: int, *, read: bool, in_flight: int = 0) -> Content:
    committer = OrderedCommitter(committed)
    for end in range(in_flight):
        committer.track(committed + end + 1, 1)
    return Content(fp, 256, gen, committer, read=read)


def test_every_content_not_read_and_acknowledged_is_named_in_order() -> None:
    acked = content("aa", 0, 900, read=True)  # done: left out
    unacked = content("bb", 1, 400, read=True, in_flight=2)  # read, waiting for acks
    unread = content("dd", 2, 0, read=False)  # not read yet (queued behind)
    tail = tail_with(acked, unacked, unread)
    tail.end = 120  # retired at its end: still not done while contents wait
    assert tail.checkpoint() == {
        "path": "/in/app.log", "dev": 8, "ino": 14, "fp": "bb", "fp_len": 256,
        "offset": 400, "gen": 1,
        "then": [{"fp": "dd", "fp_len": 256, "offset": 0, "gen": 2},
                 {"fp": "cc", "fp_len": 256, "offset": 120, "gen": 3}]}


def test_once_every_earlier_content_is_acknowledged_the_entry_is_the_files() -> None:
    tail = tail_with(content("aa", 1, 900, read=True), content("bb", 2, 400, read=True))
    tail.end = 120
    assert tail.checkpoint() == {"path": "/in/app.log", "dev": 8, "ino": 14, "fp": "cc",
                                 "fp_len": 256, "offset": 120, "gen": 3, "done": True}

