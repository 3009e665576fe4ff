"""The file source's checkpoint: one JSON file per source (DataDir.checkpoint).

`{"version": 1, "source": <name>, "files": [<entry>, ...]}`: an entry per file
read or retired, known by device and inode, with a fingerprint of its first
`fp_len` bytes (a re-used inode is not mistaken for the old file) and the
offset up to which every sink has acknowledged it.  At start, a file that is not
at a globbed path any more and not `done` is looked for by identity in its
directory (rotated while the process was stopped) and finished from its offset.

A copy-truncated file whose earlier contents are not all acknowledged yet (read
from their copies while the file is read on) has its oldest such content at the
top of its entry and the later ones, oldest first, in `then`, the last of them
the file's current content; each is resumed from its own offset, in order.  An
entry without `then` (written before 2026-12-05) names one content.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import NotRequired, TypedDict

import orjson

from streamer.core.printable import printable
from streamer.datadir.files import StateFileUnreadable, read_json, write_json

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
    # the contents after this one (copytruncate), oldest first; the last is the file's
    then: NotRequired[list[ContentEntry]]


class ContentEntry(TypedDict):
    """One content of a copy-truncated file: its first bytes and acknowledged offset."""
    fp: str
    fp_len: int
    offset: int
    gen: int


def contents_of(entry: FileEntry) -> list[ContentEntry]:
    """The entry's contents, oldest first: the last is the file's current one."""
    first: ContentEntry = {"fp": entry["fp"], "fp_len": entry["fp_len"],
                           "offset": entry["offset"], "gen": entry.get("gen", 0)}
    return [first, *entry.get("then", [])]


def load_checkpoint(path: Path) -> dict[FileKey, FileEntry]:
    """The saved entries by file; none when there is no checkpoint yet.  A
    malformed file raises: the source must not start from guessed offsets."""
    try:
        state = read_json(path, {"files": []})
        files = state["files"]
        for item in files:
            if "path_base64" in item:
                item["path"] = os.fsdecode(base64.b64decode(item.pop("path_base64")))
            if not all(type(item[key]) is int for key in ("dev", "ino", "offset")):
                raise TypeError("dev, ino and offset must be integers")
            for content in item.get("then", []):
                if not all(type(content[key]) is int for key in ("fp_len", "offset", "gen")):
                    raise TypeError("then: fp_len, offset and gen must be integers")
        return {(item["dev"], item["ino"]): item for item in files}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # JSONDecodeError too
        why = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
        raise StateFileUnreadable(path, "checkpoint", why,
                                  "move it away to read the source's files again as if "
                                  "for the first time (read_from)") from None


def save_checkpoint(path: Path, source: str, files: list[FileEntry]) -> None:
    try:
        write_json(path, {"version": VERSION, "source": source, "files": files})
    except orjson.JSONEncodeError:  # a path that is not UTF-8 (JSON cannot hold it)
        write_json(path, {"version": VERSION, "source": source,
                          "files": [_storable(entry) for entry in files]})


def _storable(entry: FileEntry) -> dict:
    """The entry with a path whose bytes are not UTF-8 kept exactly as base64
    (`path_base64`), `path` readable with `\\xNN` for those bytes."""
    raw = os.fsencode(entry["path"])
    try:
        raw.decode()
    except UnicodeDecodeError:
        return {**entry, "path": printable(entry["path"]),
                "path_base64": base64.b64encode(raw).decode()}
    return dict(entry)


def resume_offsets(path: Path) -> dict[FileKey, int]:
    """Where each file will be read from, for an estimate (the progress line):
    what cannot be read is left out; the source itself reports a bad checkpoint."""
    try:
        state = read_json(path, {})
    except (OSError, ValueError):
        return {}
    files = state.get("files", []) if isinstance(state, dict) else []
    return {(f["dev"], f["ino"]): _file_offset(f) for f in files
            if isinstance(f, dict) and "dev" in f and "ino" in f}


def _file_offset(entry: dict) -> int:
    """The offset in the file itself: its current content's (the last)."""
    then = entry.get("then")
    last = then[-1] if isinstance(then, list) and then and isinstance(then[-1], dict) else entry
    offset = last.get("offset", 0)
    return offset if type(offset) is int else 0
