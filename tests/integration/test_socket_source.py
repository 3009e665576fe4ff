"""Socket source end to end: the daemon as a subprocess, producers on real TCP sockets,
the local stage sink, contents compared."""

from __future__ import annotations

import contextlib
import re
import resource
import socket
import ssl
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import (
    LISTENING,
    Daemon,
    assert_stage_covers,
    assert_stage_equals,
    base_config,
    count_stage_rows,
    encode,
    frame,
    free_port,
    make_records,
    ndjson,
    read_dead_letters,
    scrape,
    send_in_pieces,
    socket_source,
    stage_ids,
    stage_sink,
    start,
    stop,
    wait_for_log,
    wait_until,
    write_config,
)
from tests.helpers.sockets import self_signed

pytestmark = pytest.mark.timeout(120)

def read_acks(sock: socket.socket, until: int, timeout: float = 30) -> list[int]:
    """Ack counts (4-byte big-endian) until one reaches `until` or the server closes."""
    acks: list[int] = []
    buf = b""
    sock.settimeout(timeout)
    while not acks or acks[-1] < until:
        data = sock.recv(4096)
        if not data:
            break
        buf += data
        cut = len(buf) - len(buf) % 4
        acks.extend(struct.unpack(f">{cut // 4}I", buf[:cut]))
        buf = buf[cut:]
    assert not buf
    return acks


@pytest.mark.parametrize("framing", ["newline", "length_prefixed"])
def test_fifty_concurrent_connections(tmp_path: Path, framing: str) -> None:
    conns, per_conn = 50, 1000
    records = make_records(conns * per_conn)
    payloads = ndjson(records)
    daemon, ports = start(tmp_path, base_config(tmp_path) + socket_source("tcp", framing)
                          + stage_sink(tmp_path), ["tcp"])
    try:
        with ThreadPoolExecutor(conns) as pool:
            jobs = [pool.submit(send_in_pieces, ports["tcp"],
                                encode(payloads[c * per_conn:(c + 1) * per_conn], framing), c)
                    for c in range(conns)]
            for job in jobs:
                job.result()
        stage = tmp_path / "stage"
        wait_until(lambda: count_stage_rows(stage) >= len(records), timeout=60,
                   what="every record staged")
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert_stage_equals(tmp_path / "stage", records)
    assert summary["sources"]["tcp"] == {"records": len(records),
                                         "bytes": sum(len(p) for p in payloads)
                                         + len(payloads) * (1 if framing == "newline" else 4),
                                         "rejected": 0}
    assert summary["sinks"]["stage"]["delivered"] == len(records)


def test_bad_oversize_and_truncated_frames_are_dead_lettered(tmp_path: Path) -> None:
    limit = 2000
    extra = f"max_frame_bytes = {limit}"
    text = (base_config(tmp_path) + socket_source("lines", "newline", extra=extra)
            + socket_source("frames", "length_prefixed", extra=extra) + stage_sink(tmp_path))
    daemon, ports = start(tmp_path, text, ["lines", "frames"])
    good = make_records(8)
    g = ndjson(good)
    oversize_line = b'{"id": 99, "pad": "' + b"x" * 5000 + b'"}'
    try:
        # newline framing: an oversize line, invalid JSON and a non-object are skipped;
        # reading resumes at the next line, on the same connection
        lines = [g[0], oversize_line, g[1], b"not json", b"[1, 2]", g[2]]
        stream = b"\r\n".join(lines) + b"\n"
        send_in_pieces(ports["lines"], stream, seed=1)
        # length-prefixed: good frames, then a length over the limit: the server
        # dead-letters it and closes the connection (the stream cannot resync)
        with socket.create_connection(("127.0.0.1", ports["frames"]), timeout=30) as sock:
            sock.sendall(frame(g[3]) + frame(g[4]) + struct.pack(">I", 10**6) + b"x" * 100)
            rest = b""
            try:
                while chunk := sock.recv(4096):
                    rest += chunk
            except ConnectionResetError:
                pass
            assert rest == b""  # closed by the server, nothing written back (no acks)
        # a frame cut short by the end of the connection is dead-lettered as truncated
        truncated = frame(b'{"id": 98, "cut": "here"}')[:15]
        send_in_pieces(ports["frames"], frame(g[5]) + truncated, seed=2)
        # the daemon goes on: more connections, more records
        send_in_pieces(ports["lines"], g[6] + b"\n", seed=3)
        send_in_pieces(ports["frames"], frame(g[7]), seed=4)
        wait_until(lambda: count_stage_rows(tmp_path / "stage") >= 8, timeout=30,
                   what="good records staged")
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert_stage_equals(tmp_path / "stage", good)

    dead = read_dead_letters(tmp_path / "data", "lines")
    offsets = [0]
    for line in lines[:-1]:
        offsets.append(offsets[-1] + len(line) + 2)
    # a line's bytes are all before its LF: a CRLF line keeps its CR, as in files
    assert [(d["offset"], d["raw"][:20]) for d in dead] == [
        (offsets[1], oversize_line[:20].decode()), (offsets[3], "not json\r"),
        (offsets[4], "[1, 2]\r")]
    assert "exceeds max_frame_bytes (2000)" in dead[0]["reason"]
    assert len(dead[0]["raw"]) == limit
    assert dead[1]["reason"].startswith("invalid JSON")
    assert dead[2]["reason"] == "not a JSON object: list"
    assert all(re.fullmatch(r"tcp:127\.0\.0\.1:\d+", d["origin"]) for d in dead)

    dead = read_dead_letters(tmp_path / "data", "frames")
    assert [d["offset"] for d in dead] == [len(frame(g[3]) + frame(g[4])), len(frame(g[5]))]
    assert "frame of 1000000 bytes exceeds max_frame_bytes (2000); connection closed" \
        in dead[0]["reason"]
    assert dead[0]["raw"] == struct.pack(">I", 10**6).decode()  # the 4 header bytes
    assert dead[1]["reason"].startswith("truncated frame: the connection ended after 15 ")
    assert dead[1]["raw"].encode() == truncated  # what arrived, header included
    # two connections: two client ports
    assert all(re.fullmatch(r"tcp:127\.0\.0\.1:\d+", d["origin"]) for d in dead)
    assert dead[0]["origin"] != dead[1]["origin"]
    assert summary["sources"]["lines"]["rejected"] == 3
    assert summary["sources"]["frames"]["rejected"] == 2


def test_stalled_sink_blocks_producers_and_nothing_is_lost(tmp_path: Path) -> None:
    """The stall is real: RLIMIT_FSIZE of the daemon (set with prlimit, so it works
    as root too, where a read-only directory would not stop writes) makes every
    stage write past 256 KiB fail with EFBIG, like a full disk; the sink retries
    forever.  The producers' sends must then block (TCP pushes back) with the
    daemon's memory bounded; once the limit is lifted everything arrives."""
    producers, per_producer = 4, 6000
    records = make_records(producers * per_producer, pad="p" * 700)
    payloads = ndjson(records)
    api_port = free_port()
    text = (base_config(tmp_path, api=f"127.0.0.1:{api_port}")
            + socket_source("tcp", "newline", extra="read_buffer_bytes = 65536")
            + stage_sink(tmp_path, extra="batch = {max_records = 500}\n"
                                         "buffer = {max_batches = 2}"))
    config = write_config(tmp_path, text)
    daemon = Daemon(config, tmp_path / "daemon.log")
    _soft, hard = resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (256 * 1024, hard))
    sent = [0] * producers
    errors: list[BaseException] = []

    def produce(index: int) -> None:
        data = encode(payloads[index * per_producer:(index + 1) * per_producer], "newline")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
                for pos in range(0, len(data), 32 * 1024):
                    sock.sendall(data[pos:pos + 32 * 1024])
                    sent[index] = min(pos + 32 * 1024, len(data))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    try:
        port = int(wait_for_log(daemon, LISTENING.format(name="tcp"))[0].group(1))
        threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
        for t in threads:
            t.start()
        total = sum(len(p) + 1 for p in payloads)
        wait_for_log(daemon, r"stage sink stage: .*File too large")
        # blocked: no producer has finished and none moves for 2 s
        last, still_since = -1, time.monotonic()
        while time.monotonic() - still_since < 2.0:
            now = sum(sent)
            if now != last:
                last, still_since = now, time.monotonic()
            time.sleep(0.1)
            assert time.monotonic() - still_since < 30
        # blocked, not finished: a producer whose whole share fitted in the kernel's
        # socket buffers (autotuned up to 32 MiB) may be done, not all of them
        assert sum(sent) < total and any(t.is_alive() for t in threads)
        # the daemon stopped reading: what it read is bounded by its read buffers and
        # the sink's buffer (the rest waits in the kernel's socket buffers, whose
        # loopback autotuning may reach tcp_rmem's maximum, 32 MiB here)
        source_bytes = ("streamer_source_bytes_total", (("source", "tcp"),))
        read = scrape(api_port)[source_bytes]
        time.sleep(1.0)
        assert scrape(api_port)[source_bytes] == read
        assert read < 8 * 2**20 < total, (read, total)
        staged = count_stage_rows(tmp_path / "stage")
        assert staged < 500
        import psutil  # test dependency

        rss_mb = psutil.Process(daemon.proc.pid).memory_info().rss / 2**20
        print(f"blocked after {last / 2**20:.1f} of {total / 2**20:.1f} MiB sent; "
              f"daemon RSS {rss_mb:.0f} MiB")
        # the disk "frees up": the sink's retry succeeds, reading resumes
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
        for t in threads:
            t.join(90)
        assert not errors and sum(sent) == total
        wait_until(lambda: count_stage_rows(tmp_path / "stage") >= len(records), timeout=60,
                   what="every record staged")
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert_stage_equals(tmp_path / "stage", records)
    assert summary["sinks"]["stage"]["delivered"] == len(records)


def test_ack_protocol_counts_delivered_frames_and_resend_after_crash(tmp_path: Path) -> None:
    records = make_records(3000)
    payloads = ndjson(records)
    extra = 'ack = true\nmax_frame_bytes = 100000'
    daemon, ports = start(tmp_path, base_config(tmp_path)
                          + socket_source("acked", "length_prefixed", extra=extra)
                          + stage_sink(tmp_path), ["acked"])
    port = ports["acked"]
    stage = tmp_path / "stage"
    try:
        # 1. frames in order; an invalid and an empty frame count as acknowledged once
        #    dead-lettered; every ack covers frames that are really staged
        first = payloads[:1000]
        wire = [*first[:500], b"{broken", b"", *first[500:]]
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"".join(map(frame, wire)))
            acks = read_acks(sock, 1)
            staged = stage_ids(stage)
            acked_ids = [orjson_id(p) for p in wire[:acks[0]] if p.startswith(b'{"id"')]
            assert all(staged[i] == 1 for i in acked_ids), "acked before staged"
            if acks[-1] < len(wire):
                acks += read_acks(sock, len(wire))
            sock.shutdown(socket.SHUT_WR)  # half-close: the server closes after the acks
            assert sock.recv(16) == b""
        assert acks == sorted(acks) and acks[-1] == len(wire), acks
        # 2. a producer that resends what was not acknowledged loses nothing across a
        #    daemon crash: kill -9 right after sending, restart, resend the rest
        second = payloads[1000:]
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"".join(map(frame, second)))
            time.sleep(0.3)
            daemon.kill()
            try:
                got = read_acks(sock, len(second), timeout=10)
            except ConnectionResetError:
                got = []
        acked = got[-1] if got else 0
        assert acked < len(second)  # killed before the file closed
        daemon, _ = start(tmp_path, base_config(tmp_path)
                          + socket_source("acked", "length_prefixed", port=port, extra=extra)
                          + stage_sink(tmp_path), ["acked"], log="daemon2.log")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"".join(map(frame, second[acked:])))
            got = read_acks(sock, len(second) - acked)
            assert got[-1] == len(second) - acked
        stop(daemon)
    finally:
        daemon.stop()
    counts = assert_stage_covers(stage, records)
    assert set(counts) == {r["id"] for r in records}
    assert all(counts[i] == 1 for i in range(1000))  # acknowledged, never resent


def orjson_id(payload: bytes) -> int:
    import orjson

    return orjson.loads(payload)["id"]


def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    self_signed(cert, key)
    records = make_records(2000)
    extra = f'tls = {{cert = "{cert}", key = "{key}"}}'
    daemon, ports = start(tmp_path, base_config(tmp_path)
                          + socket_source("tls", "newline", extra=extra)
                          + stage_sink(tmp_path), ["tls"])
    try:
        context = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("127.0.0.1", ports["tls"]), timeout=30) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(encode(ndjson(records), "newline"))
            # close_notify both ways; a bare close() with the server's TLS 1.3 session
            # tickets unread would reset the connection and discard what is in flight
            sock.unwrap()
        # a plain-text client on the TLS port is refused without harming the daemon
        with socket.create_connection(("127.0.0.1", ports["tls"]), timeout=30) as sock:
            sock.sendall(b'{"id": -1}\n')
            with pytest.raises((ConnectionResetError, TimeoutError)):
                while sock.recv(4096):
                    pass
                raise ConnectionResetError
        wait_until(lambda: count_stage_rows(tmp_path / "stage") >= len(records), timeout=30)
        stop(daemon)
    finally:
        daemon.stop()
    assert_stage_equals(tmp_path / "stage", records)


def test_max_connections_and_idle_timeout(tmp_path: Path) -> None:
    records = make_records(30)
    extra = "max_connections = 2\nidle_timeout_s = 1.0"
    daemon, ports = start(tmp_path, base_config(tmp_path)
                          + socket_source("tcp", "newline", extra=extra)
                          + stage_sink(tmp_path), ["tcp"])
    payloads = ndjson(records)
    try:
        held = [socket.create_connection(("127.0.0.1", ports["tcp"]), timeout=10)
                for _ in range(2)]
        for i, sock in enumerate(held):
            sock.sendall(payloads[i] + b"\n")
        # a third connection is over the limit: closed at once, its data not read
        with socket.create_connection(("127.0.0.1", ports["tcp"]), timeout=10) as over:
            over.sendall(b'{"id": -1}\n')
            with contextlib.suppress(ConnectionResetError):
                assert over.recv(16) == b""
        assert "refusing connection" in daemon.log
        # the held connections send nothing more: closed after idle_timeout_s
        for sock in held:
            assert sock.recv(16) == b""
            sock.close()
        wait_for_log(daemon, r"socket source tcp: closing .* idle for 1s", count=2)
        # their slots are free again
        send_in_pieces(ports["tcp"], b"".join(p + b"\n" for p in payloads[2:]), seed=5)
        wait_until(lambda: count_stage_rows(tmp_path / "stage") >= len(records), timeout=30)
        stop(daemon)
    finally:
        daemon.stop()
    assert_stage_equals(tmp_path / "stage", records)


@pytest.mark.parametrize("framing", ["newline", "length_prefixed"])
def test_a_byte_now_and_then_does_not_keep_a_connection_open(tmp_path: Path,
                                                             framing: str) -> None:
    """Slowloris: every slot held by a connection that sends a byte every 0.2 s but
    never completes a line or frame.  Idle means no complete line or frame: they
    are closed after idle_timeout_s, and a real producer gets a slot."""
    records = make_records(40)
    extra = "max_connections = 6\nidle_timeout_s = 1.0"
    daemon, ports = start(tmp_path, base_config(tmp_path)
                          + socket_source("tcp", framing, extra=extra)
                          + stage_sink(tmp_path), ["tcp"])
    partial = b'{"id": 9999, "slow": "' + b"x" * 200 if framing == "newline" \
        else struct.pack(">I", 5000) + b'{"id": 9999}\n' + b"x" * 200
    slow = [socket.create_connection(("127.0.0.1", ports["tcp"]), timeout=10)
            for _ in range(6)]
    closed_after: dict[int, float] = {}
    began = time.monotonic()
    try:
        for step in range(len(partial)):
            for i, sock in enumerate(slow):
                if i in closed_after:
                    continue
                try:
                    sock.sendall(partial[step:step + 1])
                    sock.settimeout(0.001)
                    if sock.recv(16) == b"":
                        closed_after[i] = time.monotonic() - began
                except (TimeoutError, BlockingIOError):
                    pass
                except OSError:  # reset or broken pipe: closed by the server
                    closed_after[i] = time.monotonic() - began
            if len(closed_after) == len(slow) or time.monotonic() - began > 8:
                break
            time.sleep(0.2)
        assert sorted(closed_after) == list(range(6)), closed_after
        assert max(closed_after.values()) < 5.0, closed_after
        assert "refusing connection" not in daemon.log
        wait_for_log(daemon, r"socket source tcp: closing .* idle for 1s \(no complete "
                     + ("line" if framing == "newline" else "frame"), count=6)
        send_in_pieces(ports["tcp"], encode(ndjson(records), framing), seed=3)
        wait_until(lambda: count_stage_rows(tmp_path / "stage") >= len(records), timeout=30)
        stop(daemon)
    finally:
        for sock in slow:
            sock.close()
        daemon.stop()
    assert_stage_equals(tmp_path / "stage", records)


def test_many_producers_of_large_frames_hold_a_bounded_total(tmp_path: Path) -> None:
    """64 producers send frames of ~1 MiB to a stalled sink (RLIMIT_FSIZE, as
    above): what the source holds across connections stays under
    max_buffered_bytes + one frame + one read per connection, so does the
    daemon's memory; once the sink resumes every record arrives."""
    producers, frames_each, per_frame = 64, 2, 95
    records = make_records(producers * frames_each * per_frame, pad="p" * 10_000)
    payloads = ndjson(records)
    frames = [b"".join(p + b"\n" for p in payloads[i:i + per_frame])
              for i in range(0, len(payloads), per_frame)]
    assert max(map(len, frames)) < 2**20 - 4
    api_port = free_port()
    limit = 8 * 2**20
    text = (base_config(tmp_path, api=f"127.0.0.1:{api_port}")
            + socket_source("tcp", "length_prefixed",
                            extra=f"max_buffered_bytes = {limit}\nidle_timeout_s = 0")
            + stage_sink(tmp_path, extra="batch = {max_records = 50}\n"
                                         "buffer = {max_batches = 1}"))
    daemon, ports = start(tmp_path, text, ["tcp"])
    import psutil  # test dependency

    process = psutil.Process(daemon.proc.pid)
    _soft, hard = resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (64 * 1024, hard))
    held = ("streamer_socket_buffered_bytes", (("source", "tcp"),))
    errors: list[BaseException] = []

    def produce(index: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", ports["tcp"]), timeout=120) as sock:
                for f in frames[index * frames_each:(index + 1) * frames_each]:
                    sock.sendall(frame(f))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    try:
        wait_until(lambda: held in scrape(api_port))
        rss_before = process.memory_info().rss
        threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
        for t in threads:
            t.start()
        wait_for_log(daemon, r"stage sink stage: .*File too large")
        peak_held = peak_rss = 0
        for _ in range(30):  # 3 s of the stall
            peak_held = max(peak_held, scrape(api_port)[held])
            peak_rss = max(peak_rss, process.memory_info().rss)
            time.sleep(0.1)
        bound = limit + 2**20 + producers * 256 * 1024
        assert limit / 2 < peak_held <= bound, (peak_held, bound)
        growth_mb = (peak_rss - rss_before) / 2**20
        print(f"held {peak_held / 2**20:.1f} MiB; RSS grew {growth_mb:.0f} MiB")
        assert growth_mb < 60, growth_mb  # unbounded: ~64 x (read buffer + a frame)
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
        for t in threads:
            t.join(90)
        assert not errors
        wait_until(lambda: count_stage_rows(tmp_path / "stage") >= len(records), timeout=90,
                   what="every record staged")
        assert scrape(api_port)[held] == 0
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert summary["sinks"]["stage"]["delivered"] == len(records)
    assert_stage_equals(tmp_path / "stage", records)
