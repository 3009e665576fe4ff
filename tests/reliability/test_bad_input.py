"""Bad input never stops the pipeline and is never dropped silently (issue #6).

The file corpus holds every kind of bad line in one place; the socket test adds what
tests/integration/test_socket_source.py does not already cover: byte-by-byte and idle
producers, binary garbage and an HTTP client on the framed port, all at once, while
other connections go on delivering."""

from __future__ import annotations

import base64
import random
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import (
    assert_stage_equals,
    base_config,
    count_stage_rows,
    encode,
    file_source,
    frame,
    make_records,
    ndjson,
    read_dead_letters,
    run_cli,
    send_in_pieces,
    socket_source,
    stage_sink,
    start,
    stop,
    wait_for_log,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(120)

MAX_LINE = 1_048_576  # the default max_line_bytes
BOM = b"\xef\xbb\xbf"

# every kind of bad line: (kind, bytes of the line, what its dead letter's reason says)
CORPUS = [
    ("malformed JSON", b'{"a": 1, "b": ', "invalid JSON"),
    ("trailing comma", b'{"a": 1,}', "invalid JSON"),
    ("plain text", b"hello world", "invalid JSON"),
    ("array", b"[1, 2, 3]", "not a JSON object: list"),
    ("string", b'"just a string"', "not a JSON object: str"),
    ("number", b"42", "not a JSON object: int"),
    ("null", b"null", "not a JSON object: NoneType"),
    ("invalid UTF-8", b'{"a": "\xff\xfe\xc3("}', "invalid JSON"),
    ("lone surrogate escape", b'{"s": "\\ud800"}', "invalid JSON"),
    ("lone low surrogate escape", b'{"s": "x\\udfffy"}', "invalid JSON"),
    # NULs are a hole a crash left: reported by its length, without them; a hole
    # after the start of a line cuts it short: one dead letter holding what was before
    ("NUL bytes", b'{"nul": "a\x00\x00', "a line of 10 bytes cut short by a hole of 2 NUL"),
    ("only NULs", b"\x00\x00\x00", "a hole of 3 NUL bytes"),
    ("BOM inside the file", BOM + b'{"a": 1}', "invalid JSON"),
    ("deep nesting", b'{"deep": ' + b"[" * 5000 + b"]" * 5000 + b"}", "invalid JSON"),
    ("huge integer", b'{"n": %d}' % 2**70, "64-bit"),
    ("huge negative integer", b'{"n": -%d}' % 2**70, "64-bit"),
    ("10 MB line", b'{"pad": "' + b"x" * 10_000_000 + b'"}', "max_line_bytes"),
    ("just over max_line_bytes", b'{"pad": "' + b"y" * (MAX_LINE - 10) + b'"}',
     "max_line_bytes"),
]


def raw_of(letter: dict) -> bytes:
    if "raw" in letter:
        return letter["raw"].encode()
    return base64.b64decode(letter["raw_base64"])


def test_file_corpus_of_every_bad_kind(tmp_path: Path) -> None:
    good = make_records(len(CORPUS) * 3 + 3, seed=12)
    lines = ndjson(good)
    body = bytearray(BOM)  # a BOM at the start of the file is skipped
    offsets = []
    for i, (_kind, line, _reason) in enumerate(CORPUS):
        body += lines[3 * i] + b"\r\n"  # CRLF endings ...
        body += lines[3 * i + 1] + b"\n\n   \n\r\n"  # ... LF, blank and blank-ish lines
        offsets.append(len(body))
        body += line + b"\n"
        body += lines[3 * i + 2] + b"\n"
    body += b"\n".join(lines[-3:])  # the last line without a newline
    source = tmp_path / "in.ndjson"
    source.write_bytes(bytes(body))
    text = (base_config(tmp_path) + file_source(source, follow=False)
            + stage_sink(tmp_path, extra="batch = { max_records = 7 }"))
    done = run_cli("run", "-c", str(write_config(tmp_path, text)))
    assert done.code == 0, done.stderr[-3000:]

    assert_stage_equals(tmp_path / "stage", good)  # every good record, exactly once
    letters = read_dead_letters(tmp_path / "data", "events")
    assert len(letters) == len(CORPUS)
    for (kind, line, reason), offset, letter in zip(CORPUS, offsets, letters, strict=True):
        assert letter["offset"] == offset, kind
        assert letter["origin"] == str(source), kind
        assert letter["component"] == "events", kind
        assert reason in letter["reason"], (kind, letter["reason"])
        # an oversize line: its first bytes; a hole: what was before it
        assert raw_of(letter) == line.split(b"\x00")[0][:MAX_LINE], kind
        assert body[offset:].startswith(raw_of(letter)), kind
    summary = done.summary
    assert summary["sources"]["events"] == {"records": len(good), "bytes": len(body),
                                            "rejected": len(CORPUS)}
    assert summary["sinks"]["stage"]["delivered"] == len(good)


def trickle(port: int, data: bytes, until: threading.Event, errors: list) -> None:
    """A slow producer: one byte every 50 ms (each line or frame complete within
    idle_timeout_s) until
    `until` is set, then the rest at once; then a half-close and wait for the close."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pos = 0
            while not until.is_set() and pos < len(data) - 1:
                sock.sendall(data[pos:pos + 1])
                pos += 1
                until.wait(0.05)
            sock.sendall(data[pos:])
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def go_idle(port: int, data: bytes, closed: list, errors: list) -> None:
    """Send `data`, then nothing: the server must close the connection."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(data)
            closed.append(sock.recv(4096) == b"")
    except BaseException as exc:
        errors.append(exc)


def garbage_lines(count: int, seed: int) -> list[bytes]:
    """Binary lines (invalid UTF-8, control bytes), never valid JSON; no NUL (a run
    of NULs is a hole that ends a line: CORPUS, test_nul_hole.py)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        line = b"\xff" + rng.randbytes(rng.randint(1, 200))
        lines.append(line.replace(b"\n", b"\x02").replace(b"\r", b"\x01")
                     .replace(b"\x00", b"\x03"))
    return lines


def test_socket_bad_slow_and_idle_producers_while_others_deliver(tmp_path: Path) -> None:
    limit = 4096
    extra = f"max_frame_bytes = {limit}\nidle_timeout_s = 1.5"
    text = (base_config(tmp_path) + socket_source("lines", "newline", extra=extra)
            + socket_source("frames", "length_prefixed", extra=extra) + stage_sink(tmp_path))
    daemon, ports = start(tmp_path, text, ["lines", "frames"])
    # a slow producer sends a byte every 50 ms but completes a line (a frame) within
    # idle_timeout_s, so it stays open: short records
    records = [{"id": 20_000 + i} for i in range(60)] + make_records(10_020, seed=13)
    g = ndjson(records)
    slow, idle, mixed, fast = g[:60], g[60:62], g[62:74], g[74:]
    garbage = garbage_lines(8, seed=5)
    oversize = b'{"id": -2, "pad": "' + b"z" * 2 * limit + b'"}'
    # expected dead letters: raw -> (offset on its connection, what the reason says)
    partial_line, partial_frame = b'{"id": -1, "cut', frame(b'{"id": -3, "cut": 1}')[:10]
    http = b"GET / HTTP/1.1\r\nHost: streamer\r\n\r\n"
    mixed_stream = [mixed[0], *garbage[:4], oversize, *mixed[1:6], *garbage[4:], *mixed[6:]]
    expected = {"lines": {partial_line: (len(idle[0]) + 1, "invalid JSON"),
                          oversize[:limit]: (None, f"exceeds max_frame_bytes ({limit})")},
                "frames": {partial_frame: (len(frame(idle[1])),
                                           "truncated frame: the connection ended after 10"),
                           http[:4]: (0, "connection closed (cannot resynchronise)")}}
    position = 0
    for line in mixed_stream:
        if line in garbage:
            expected["lines"][line] = (position, "invalid JSON")
        elif line is oversize:
            expected["lines"][oversize[:limit]] = (position, expected["lines"][line[:limit]][1])
        position += len(line) + 1

    errors: list[BaseException] = []
    closed: list[bool] = []
    fast_done = threading.Event()
    threads = [
        threading.Thread(target=trickle, args=(ports["lines"], encode(slow[:30], "newline"),
                                               fast_done, errors)),
        threading.Thread(target=trickle, args=(ports["frames"],
                                               encode(slow[30:], "length_prefixed"),
                                               fast_done, errors)),
        threading.Thread(target=go_idle, args=(ports["lines"], idle[0] + b"\n" + partial_line,
                                               closed, errors)),
        threading.Thread(target=go_idle, args=(ports["frames"],
                                               frame(idle[1]) + partial_frame, closed, errors)),
    ]
    try:
        for t in threads:
            t.start()
        send_in_pieces(ports["lines"], encode(mixed_stream, "newline"), seed=1)
        send_in_pieces(ports["frames"], http, seed=2)
        # meanwhile, other producers deliver as usual
        with ThreadPoolExecutor(2) as pool:
            for job in [pool.submit(send_in_pieces, ports["lines"],
                                    encode(fast[:5000], "newline"), 3),
                        pool.submit(send_in_pieces, ports["frames"],
                                    encode(fast[5000:], "length_prefixed"), 4)]:
                job.result()
        wait_until(lambda: count_stage_rows(tmp_path / "stage") >= len(fast) + len(mixed),
                   timeout=30, what="the fast producers' records staged")
        assert threads[0].is_alive() and threads[1].is_alive()  # still trickling
        wait_for_log(daemon, r"closing .* idle for 1\.5s", count=2)
        fast_done.set()
        for t in threads:
            t.join(30)
        assert not errors, errors
        assert closed == [True, True]  # the idle connections were closed by the server
        wait_until(lambda: count_stage_rows(tmp_path / "stage") >= len(records), timeout=30,
                   what="every good record staged")
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert_stage_equals(tmp_path / "stage", records)
    for name, want in expected.items():
        letters = read_dead_letters(tmp_path / "data", name)
        got = {raw_of(d): (d["offset"], d["reason"]) for d in letters}
        assert len(letters) == len(got) == len(want), (name, letters)
        assert set(got) == set(want), name
        for raw, (offset, reason) in want.items():
            assert offset is None or got[raw][0] == offset, (name, raw[:40], got[raw])
            assert reason in got[raw][1], (name, raw[:40], got[raw])
        assert summary["sources"][name]["rejected"] == len(want)
