"""Paths into a record: `user.id`, `items[0].sku`, `["a.b"].c`, `.` (the record).

A path is a tuple of steps, each an object key (str) or an array index (int).
It starts with a key (a record is an object) or is `.` (the empty tuple)."""

from __future__ import annotations

import json
import re

Step = str | int
Path = tuple[Step, ...]

# a bare key: anything but the path's own punctuation and white space
_KEY = re.compile(r'[^.\[\]"\s]+')
_INDEX = re.compile(r"\[([0-9]+)\]")
_QUOTED = re.compile(r'\[("(?:[^"\\]|\\.)*")\]')


def parse_path(text: str) -> Path:
    """Steps of `text`; ValueError says what is wrong with it."""
    if text == ".":
        return ()
    steps: list[Step] = []
    position = 0
    while position < len(text):
        if steps and text[position] == ".":
            position += 1
            match = _KEY.match(text, position)
            if match is None:
                raise ValueError(f"path {text!r}: a key must follow '.' at {position}")
            steps.append(match.group())
        elif (match := _QUOTED.match(text, position)) is not None:
            steps.append(json.loads(match.group(1)))
        elif (match := _INDEX.match(text, position)) is not None:
            if not steps:
                raise ValueError(f"path {text!r}: a record is an object, it starts with a key")
            steps.append(int(match.group(1)))
        elif not steps and (match := _KEY.match(text, position)) is not None:
            steps.append(match.group())
        else:
            raise ValueError(f"path {text!r}: unexpected {text[position]!r} at {position} "
                             "(keys as a.b, indices as a[0], other keys as [\"a.b\"])")
        position = match.end()
    if not steps:
        raise ValueError("path is empty (the whole record is '.')")
    return tuple(steps)


def key_path(key: str) -> str:
    """The path of one top-level key, whatever characters it holds."""
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def show_path(steps: Path) -> str:
    """A path as users write it (for reasons and `streamer columns`)."""
    if not steps:
        return "."
    out = []
    for i, step in enumerate(steps):
        if isinstance(step, int):
            out.append(f"[{step}]")
        elif _KEY.fullmatch(step):
            out.append(f".{step}" if i else step)
        else:
            out.append(key_path(step))
    return "".join(out)


def json_path(steps: Path) -> str:
    """DuckDB's JSONPath for `steps` (keys always quoted)."""
    out = ["$"]
    for step in steps:
        if isinstance(step, int):
            out.append(f"[{step}]")
        else:
            # DuckDB reads \" and \\ in a quoted key, other characters as they are
            out.append('."' + step.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "".join(out)
