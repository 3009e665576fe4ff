"""A file's stream key for exactly-once staging: `<dev>.<ino>.<gen>.<head>`.

It must be the same after a rename, a rotation or a restart (with or without a
checkpoint), and differ for a new file that re-uses the inode or a file that a
copytruncate started again at 0.  `head` hashes the first line (at most
FINGERPRINT_BYTES): written once and never changed in a file that is only
appended to, and known as soon as the first record is.  `gen` counts the
truncations the source saw (kept in the checkpoint).
"""

from __future__ import annotations

import hashlib
import os

from streamer.sources.file.checkpoint import FileKey
from streamer.sources.file.identity import FINGERPRINT_BYTES


def stream_key(fd: int, key: FileKey, gen: int, complete: bool) -> str | None:
    """None when `complete` and the first line is not whole yet."""
    head = os.pread(fd, FINGERPRINT_BYTES, 0)
    newline = head.find(b"\n")
    if newline >= 0:
        head = head[:newline + 1]
    elif complete and len(head) < FINGERPRINT_BYTES:
        return None
    digest = hashlib.blake2b(head, digest_size=8).hexdigest()
    return f"{key[0]}.{key[1]}.{gen}.{digest}"


def latest_generation(key: str, known: list[str]) -> str:
    """`key` (generation 0) or the highest generation of the same file and head
    among `known` keys."""
    dev, ino, _, digest = key.split(".")
    best = 0
    for other in known:
        parts = other.split(".")
        if len(parts) == 4 and (parts[0], parts[1], parts[3]) == (dev, ino, digest):
            best = max(best, int(parts[2]))
    return f"{dev}.{ino}.{best}.{digest}"
