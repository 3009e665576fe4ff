"""The file source's checkpoint: one JSON file per source (DataDir.checkpoint).

`{"version": 1, "source": <name>, "files": [<entry>, ...]}`: an entry per file
read or retired, known by device and inode, with a fingerprint of its first
`fp_len` bytes (a re-used inode is not mistaken for the old file) and the
offset up to which every sink has acknowledged it.  At start, a file that is not
at a globbed path any more and not `done` is looked for by identity in its
directory (rotated while the process was stopped) and finished from its offset.
"""

from __future__ import annotations

from pathlib import Path
from typing import NotRequired, TypedDict

from streamer.datadir.files import read_json, write_json

VERSION = 1

FileKey = tuple[int, int]  # (device, inode)


class FileEntry(TypedDict):
    path: str
    dev: int
    ino: int
    fp: str
    fp_len: int
    offset: int
    # retired (rotated away, closed) and acknowledged to its end: not looked for
    # again at start
    done: NotRequired[bool]
    # times the file was truncated and read again from 0 (part of its stream key)
    gen: NotRequired[int]


def load_checkpoint(path: Path) -> dict[FileKey, FileEntry]:
    """The saved entries by file; none when there is no checkpoint yet.  A
    malformed file raises: the source must not start from guessed offsets."""
    state = read_json(path, {"files": []})
    return {(item["dev"], item["ino"]): item for item in state.get("files", [])}


def save_checkpoint(path: Path, source: str, files: list[FileEntry]) -> None:
    write_json(path, {"version": VERSION, "source": source, "files": files})


def resume_offsets(path: Path) -> dict[FileKey, int]:
    """Where each file will be read from, for an estimate (the progress line):
    what cannot be read is left out; the source itself reports a bad checkpoint."""
    try:
        state = read_json(path, {})
    except (OSError, ValueError):
        return {}
    files = state.get("files", []) if isinstance(state, dict) else []
    return {(f["dev"], f["ino"]): f.get("offset", 0) for f in files
            if isinstance(f, dict) and "dev" in f and "ino" in f}
