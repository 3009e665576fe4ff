"""What a tailed file's end means: grown, unchanged, truncated (copytruncate) or gone."""

from __future__ import annotations

import os

from streamer.core.ack import OrderedCommitter
from streamer.sources.file.identity import fingerprint
from streamer.sources.file.tailed import TailedFile, state_at_end


def test_a_file_rewritten_to_the_size_read_is_found_truncated(tmp_path) -> None:
    """copytruncate, then the writer wrote as many bytes as were read: the size alone
    says nothing; before 2026-12-05 the head was looked at only once the file grew, so
    copytruncates that came meanwhile went unseen and their contents unread."""
    path = tmp_path / "app.log"
    path.write_bytes(b'{"id": 1}\n' * 30)
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        tail = TailedFile(str(path), st.st_dev, st.st_ino, *fingerprint(fd),
                          OrderedCommitter(300), fd=fd)
        assert state_at_end(tail, 300) == "ok"
        path.write_bytes(b'{"id": 2}\n' * 30)  # truncated, then rewritten: same size
        assert state_at_end(tail, 300) == "truncated"
    finally:
        os.close(fd)
