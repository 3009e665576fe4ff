"""One set of line rules for every NDJSON stream: the same bytes read from a file,
from stdin and from a newline socket give the same records and the same dead
letters (offset, raw, reason), each dead letter naming its origin."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import (
    COLUMNS,
    assert_stage_equals,
    base_config,
    count_stage_rows,
    make_records,
    read_dead_letters,
    run_cli,
    send_in_pieces,
    socket_source,
    start,
    stop,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(120)

LIMIT = 1000
BOM = b"\xef\xbb\xbf"


def stream_and_expectations() -> tuple[bytes, list[dict[str, Any]], list[tuple[int, bytes, str]]]:
    """A stream with every rule at work; its records and (offset, raw, reason) of
    its dead letters."""
    records = make_records(6, seed=21)
    # a record of exactly LIMIT bytes, then CRLF: the CR does not count
    records[2]["pad"] = ""
    records[2]["pad"] = "p" * (LIMIT - len(orjson.dumps(records[2])))
    g = [orjson.dumps(r) for r in records]
    assert len(g[2]) == LIMIT
    oversize = b'{"pad": "' + b"o" * 5000 + b'"}'
    parts: list[bytes | tuple[bytes, str]] = [
        BOM,  # skipped at the start of the stream
        g[0] + b"\r\n", b"\n", b"  \t\r\n",  # CRLF, blank and blank-ish lines
        (b"not json", "invalid JSON"), b"\n",
        g[1] + b"\n",
        (BOM + b'{"a": 1}', "invalid JSON"), b"\n",  # a BOM anywhere else is not skipped
        (oversize, f"exceeds max_LIMIT ({LIMIT}); raw holds its first {LIMIT} bytes"),
        b"\r\n",
        (b"[1, 2]", "not a JSON object: list"), b"\n",
        g[2] + b"\r\n", g[3] + b"\r\n", b"\r\n", g[4] + b"\n",
        g[5],  # the last line needs no newline
    ]
    stream, dead = b"", []
    for part in parts:
        if isinstance(part, tuple):
            line, reason = part
            dead.append((len(stream), line[:LIMIT], reason))
            part = line
        stream += part
    return stream, records, dead


def sink(name: str, source: str, tmp: Path) -> str:
    return f"""
[sinks.{name}]
type = "stage"
inputs = ["{source}"]
url = "file://{tmp}/{name}/"
columns = {orjson.dumps(COLUMNS).decode()}
max_file_age_s = 0.5
fsync = false
"""


def assert_dead_letters(letters: list[dict[str, Any]], expected: list[tuple[int, bytes, str]],
                        origin: str, setting: str) -> None:
    assert [(d["offset"], d["raw"].encode()) for d in letters] == [
        (offset, raw) for offset, raw, _ in expected]
    for letter, (_, _, reason) in zip(letters, expected, strict=True):
        assert reason.replace("max_LIMIT", setting) in letter["reason"], letter["reason"]
        assert re.fullmatch(origin, letter["origin"]), letter["origin"]


def test_file_stdin_and_socket_take_the_same_lines(tmp_path: Path) -> None:
    stream, records, dead = stream_and_expectations()
    source = tmp_path / "in.ndjson"
    source.write_bytes(stream)
    # small reads: the oversize line and others are cut across reads
    reads = f"max_line_bytes = {LIMIT}\nread_bytes = 4096"
    text = base_config(tmp_path) + f"""
[sources.file]
type = "file"
paths = ["{source}"]
follow = false
{reads}
[sources.stdin]
type = "stdin"
{reads}
""" + sink("file_stage", "file", tmp_path) + sink("stdin_stage", "stdin", tmp_path)
    done = run_cli("run", "-c", str(write_config(tmp_path, text)), stdin=stream)
    assert done.code == 0, done.stderr[-3000:]
    assert_dead_letters(read_dead_letters(tmp_path / "data", "file"), dead, re.escape(str(source)),
                        "max_line_bytes")
    assert_dead_letters(read_dead_letters(tmp_path / "data", "stdin"), dead, "stdin",
                        "max_line_bytes")
    for name in ("file", "stdin"):
        assert_stage_equals(tmp_path / f"{name}_stage", records)
        assert done.summary["sources"][name] == {"records": len(records), "bytes": len(stream),
                                                 "rejected": len(dead)}

    socket_dir = tmp_path / "socket"
    socket_dir.mkdir()
    text = (base_config(socket_dir)
            + socket_source("tcp", "newline", extra=f"max_frame_bytes = {LIMIT}")
            + sink("stage", "tcp", socket_dir))
    daemon, ports = start(socket_dir, text, ["tcp"])
    try:
        send_in_pieces(ports["tcp"], stream, seed=3)
        wait_until(lambda: count_stage_rows(socket_dir / "stage") >= len(records), timeout=30,
                   what="the socket's records staged")
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert_stage_equals(socket_dir / "stage", records)
    assert_dead_letters(read_dead_letters(socket_dir / "data", "tcp"),
                        dead, r"tcp:127\.0\.0\.1:\d+", "max_frame_bytes")
    assert summary["sources"]["tcp"] == {"records": len(records), "bytes": len(stream),
                                         "rejected": len(dead)}


def test_a_one_shot_run_leaves_a_line_a_writer_is_still_writing(tmp_path: Path) -> None:
    """follow = false over a file a writer appends to: its last line, cut short
    (no newline, not JSON yet), is left for the next run, which reads it whole;
    before, each run dead-lettered one half of it and the record was lost."""
    records = make_records(5, seed=4)
    lines = [orjson.dumps(r) for r in records]
    source = tmp_path / "in.ndjson"
    source.write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][:20])  # mid-write
    config = write_config(tmp_path, base_config(tmp_path) + f"""
[sources.file]
type = "file"
paths = ["{source}"]
follow = false
""" + sink("stage", "file", tmp_path))
    first = run_cli("run", "-c", str(config))
    assert first.code == 0, first.stderr[-3000:]
    assert first.summary["sources"]["file"]["records"] == 3
    assert (f"{source} ends with a line cut short at offset {sum(len(x) + 1 for x in lines[:3])}"
            in first.stderr), first.stderr[-3000:]
    with open(source, "ab") as out:  # the writer finishes its line, and writes another
        out.write(lines[3][20:] + b"\n" + lines[4])  # the last one needs no newline
    second = run_cli("run", "-c", str(config))
    assert second.code == 0, second.stderr[-3000:]
    # read again from the start of the cut line
    assert second.summary["sources"]["file"] == {"records": 2, "rejected": 0,
                                                 "bytes": len(lines[3]) + 1 + len(lines[4])}
    assert read_dead_letters(tmp_path / "data", "file") == []
    assert_stage_equals(tmp_path / "stage", records)
