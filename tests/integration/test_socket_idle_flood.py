"""Connections that are opened and never send must not lock real producers out.

Found by session 15's outside tester: with `max_connections` connections open and
silent, a socket source refused every producer for `idle_timeout_s` (300 s by
default).  Now a connection with no complete first line within
`first_record_timeout_s` is closed (`outcome="no_record"`), and at `max_connections`
a new connection displaces the oldest one that has sent no byte for 1 s
(`outcome="evicted"`); a producer mid-record is never cut, and once its first record
is complete a slow producer has `idle_timeout_s` again.  One daemon run checks it all."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import (
    assert_stage_equals,
    base_config,
    free_port,
    make_records,
    ndjson,
    read_dead_letters,
    scrape,
    socket_source,
    stage_sink,
    start,
    stop,
    wait_until,
)
from tests.helpers.sockets import closed_by_server

pytestmark = pytest.mark.timeout(60)

MAX_CONNECTIONS = 8
FIRST_RECORD_S = 5.0  # the producer below connects ~1.2 s in: 3.8 s to spare
STEP_S = 0.3  # the slow producers' pace


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=20)


def pieces(data: bytes, count: int) -> list[bytes]:
    size = -(-len(data) // count)
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_silent_connections_give_way_to_real_producers(tmp_path: Path) -> None:
    records = make_records(8)
    lines = [line + b"\n" for line in ndjson(records)]
    api_port = free_port()
    daemon, ports = start(
        tmp_path, base_config(tmp_path, api=f"127.0.0.1:{api_port}")
        + socket_source("tcp", "newline", extra=f"max_connections = {MAX_CONNECTIONS}\n"
                        f"first_record_timeout_s = {FIRST_RECORD_S}")
        + stage_sink(tmp_path), ["tcp"])
    port = ports["tcp"]
    errors: list[BaseException] = []
    trickle_cut = threading.Event()

    def slow_but_steady(sock: socket.socket) -> None:
        """Its first record within the bound, then one record over 6 s (longer than
        first_record_timeout_s: not cut, only idle_timeout_s applies now)."""
        try:
            for piece in pieces(lines[0], 4) + pieces(lines[1], 20) + [lines[2]]:
                sock.sendall(piece)
                time.sleep(STEP_S)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):  # until the server closes its side
                pass
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def trickle(sock: socket.socket) -> None:
        """A byte every 0.3 s of a first line that never ends: cut at the bound."""
        try:
            while True:
                sock.sendall(b"{")
                time.sleep(STEP_S)
        except OSError:
            trickle_cut.set()

    # the producers mid-record are the oldest: the displaced one must still be silent
    trickler, steady = connect(port), connect(port)
    threads = [threading.Thread(target=trickle, args=(trickler,)),
               threading.Thread(target=slow_but_steady, args=(steady,))]
    for thread in threads:
        thread.start()
    silent = [connect(port) for _ in range(MAX_CONNECTIONS - 2)]
    trickler_port = trickler.getsockname()[1]
    outcome = {name: ("streamer_socket_connections_total",
                      (("outcome", name), ("source", "tcp")))
               for name in ("accepted", "refused", "no_record", "evicted")}
    try:
        wait_until(lambda: scrape(api_port).get(outcome["accepted"]) == MAX_CONNECTIONS,
                   what="every connection admitted")
        time.sleep(1.2)  # the silent ones are older than 1 s (a time, not an event)
        with connect(port) as producer:  # at max_connections, before any time out
            producer.sendall(b"".join(lines[3:]))
            producer.shutdown(socket.SHUT_WR)
            while producer.recv(65536):
                pass
        # every silent connection and the trickler closed: one displaced, the rest
        # timed out (main: all held open for idle_timeout_s, the producer refused)
        wait_until(lambda: all(closed_by_server(s) for s in silent) and trickle_cut.is_set(),
                   timeout=15, what="the silent connections and the trickler closed")
        for thread in threads:
            thread.join(20)
        assert errors == []  # the steady producer was never cut
        wait_until(lambda: scrape(api_port).get(outcome["accepted"]) == MAX_CONNECTIONS + 1)
        metrics = scrape(api_port)
        assert {name: metrics[key] for name, key in outcome.items()} == {
            "accepted": MAX_CONNECTIONS + 1, "refused": 0,
            "no_record": MAX_CONNECTIONS - 2, "evicted": 1}
        # one accepted in the same loop iteration as another is as old: any silent one
        displaced = re.findall(r"closing 127\.0\.0\.1:(\d+), which sent nothing in", daemon.log)
        assert len(displaced) == 1 and int(displaced[0]) in {
            s.getsockname()[1] for s in silent}, (displaced, trickler_port)
        assert (f"closing 127.0.0.1:{trickler_port}: no complete line within "
                "first_record_timeout_s 5s") in daemon.log
        summary = stop(daemon)
    finally:
        for sock in [*silent, trickler, steady]:
            sock.close()
        daemon.stop()
    # the steady producer's three records and the producer's five, in full
    assert_stage_equals(tmp_path / "stage", records)
    # the trickler's unfinished line is dead-lettered, not lost
    dead = read_dead_letters(tmp_path / "data", "tcp")
    assert [(d["origin"], d["offset"]) for d in dead] == [
        (f"tcp:127.0.0.1:{trickler_port}", 0)]
    assert set(dead[0]["raw"]) == {"{"}, dead
    assert summary["sinks"]["stage"]["delivered"] == len(records)
