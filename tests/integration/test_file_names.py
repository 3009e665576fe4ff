"""File names as a filesystem may hold them: spaces, unicode, a newline, a leading
dash, bytes that are not UTF-8.  Each file is read once, its bad lines
dead-lettered, its checkpoint saved: a second one-shot run reads nothing."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from tests.helpers import (
    assert_stage_equals,
    base_config,
    file_source,
    make_records,
    read_dead_letters,
    run_cli,
    stage_sink,
    write_config,
)

pytestmark = pytest.mark.timeout(60)

NAMES = [b"with space.ndjson", "ünïcödé ✓.ndjson".encode(), b"new\nline.ndjson",
         b"-dash.ndjson", b"latin1-\xe9t\xe9.ndjson", b"\xff\xfe.ndjson"]


def test_odd_file_names_are_read_once_and_checkpointed(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    records = make_records(2 * len(NAMES))
    for i, name in enumerate(NAMES):
        data = b"".join(orjson.dumps(r) + b"\n" for r in records[2 * i:2 * i + 2])
        with open(os.path.join(os.fsencode(logs), name), "wb") as fh:
            fh.write(data + b"not json\n")
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(str(logs / "*.ndjson"), follow=False)
                          + stage_sink(tmp_path))

    first = run_cli("run", "-c", str(config), "--log-format", "json")
    assert first.code == 0, first.stderr
    assert "Logging error" not in first.stderr, first.stderr  # each line is JSON
    lines = [orjson.loads(line) for line in first.stderr.splitlines()]
    assert any("\\xff\\xfe.ndjson offset" in line.get("message", "") for line in lines)
    assert first.summary["sources"]["events"]["records"] == len(records)
    assert_stage_equals(tmp_path / "stage", records)
    dead = read_dead_letters(tmp_path / "data", "events")
    # bytes that are not UTF-8 as \xNN (a dead letter is JSON)
    assert sorted(d["origin"] for d in dead) == sorted(
        os.path.join(os.fsencode(logs), name).decode("utf-8", "backslashreplace")
        for name in NAMES)

    again = run_cli("run", "-c", str(config))
    assert again.code == 0, again.stderr
    assert again.summary["sources"]["events"]["records"] == 0
    assert_stage_equals(tmp_path / "stage", records)


def test_a_double_star_glob_over_symlinks_to_parents_ends(tmp_path: Path) -> None:
    """`logs/**/*.ndjson` where a directory holds two links to its parent: glob's walk
    follows both at every level (2^40 paths before ELOOP): the source never got past
    its first glob, the event loop blocked (no reading, no signal served)."""
    logs = tmp_path / "logs"
    (logs / "app" / "old").mkdir(parents=True)
    records = make_records(4)
    for i, path in enumerate([logs / "top.ndjson", logs / "app" / "a.ndjson",
                              logs / "app" / "old" / "b.ndjson", logs / "app" / "c.txt"]):
        path.write_bytes(orjson.dumps(records[i]) + b"\n")
    (logs / "app" / "up").symlink_to("..")
    (logs / "app" / "old" / "up").symlink_to("../..")
    (logs / "elsewhere").symlink_to(logs / "app" / "old")  # a link to a directory: followed
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(str(logs / "**" / "*.ndjson"), follow=False)
                          + stage_sink(tmp_path))
    done = run_cli("run", "-c", str(config), timeout=30)
    assert done.code == 0, done.stderr
    assert_stage_equals(tmp_path / "stage", records[:3])  # each file once, c.txt not


FORGED = "2026-01-01 00:00:00,000 CRITICAL streamer: forged"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_file_name_cannot_forge_a_log_line(tmp_path: Path, log_format: str) -> None:
    """A name holding a newline, a carriage return and an escape sequence is one log
    line, its control characters escaped (text: as \\n, \\r, \\x1b; json: JSON's own
    escapes); before 2026-12-05 the text log line that named it was split in two and
    the second looked like a line of the daemon's own."""
    logs = tmp_path / "logs"
    logs.mkdir()
    records = make_records(2)
    name = f"evil\n{FORGED}\r\x1b[2K.ndjson"
    (logs / name).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records)
                              + b"not json\n")  # a bad line: a WARNING names the file
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(str(logs / "*.ndjson"), follow=False)
                          + stage_sink(tmp_path))
    done = run_cli("run", "-c", str(config), "--log-format", log_format)
    assert done.code == 0, done.stderr
    assert_stage_equals(tmp_path / "stage", records)
    lines = done.stderr.splitlines()
    assert not any(line.startswith(FORGED) for line in lines), done.stderr
    assert "\x1b" not in done.stderr and "\r" not in done.stderr, done.stderr
    if log_format == "json":
        messages = [orjson.loads(line).get("message", "") for line in lines]
        assert any(str(logs / name) in m for m in messages), done.stderr
    else:
        escaped = str(logs / "evil") + "\\n" + FORGED + "\\r\\x1b[2K.ndjson"
        assert any(escaped in line for line in lines), done.stderr
