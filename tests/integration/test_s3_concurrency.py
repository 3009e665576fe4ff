"""file -> S3 stage against an S3-like receiver of fixed capacity: the uploads' adaptive
concurrency limit comes down on 503 SlowDown, climbs back once the receiver takes
more, and every record arrives."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from pathlib import Path

import httptools
import pytest

from bench.gen import iter_records
from tests.helpers import (
    BENCH_COLUMNS,
    Daemon,
    assert_same_multiset,
    expected_rows,
    free_port,
    s3_stage_config,
    scrape,
    wait_until,
    write_ndjson,
)
from tests.helpers.csvfiles import parse_csv

pytestmark = pytest.mark.timeout(120)
CAPACITY = 2  # PUTs served at once
QUEUE = 1  # PUTs waiting for a place; above CAPACITY + QUEUE: 503 SlowDown
SERVICE_S = 0.04
MAXIMUM = 16  # s3.upload_concurrency
RECORDS = 8_000
FILE_RECORDS = 40  # 200 objects
LIMIT = ("streamer_stage_s3_upload_concurrency_limit", (("sink", "st"),))
SLOW_DOWN = (b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: %d"
             b"\r\n\r\n%s")
SLOW_DOWN_BODY = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
                  b"<Message>Please reduce your request rate.</Message></Error>")
NO_UPLOADS = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListMultipartUploadsResult>"
              b"<Bucket>b</Bucket><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>")


class S3Receiver:
    """PUT object (served CAPACITY at a time, QUEUE waiting, 503 SlowDown above) and an
    empty multipart-upload listing; `capacity = 0` serves every PUT at once."""

    def __init__(self) -> None:
        self.capacity = CAPACITY
        self.objects: dict[str, bytes] = {}
        self.refused = 0
        self.in_flight = 0
        self._serving = 0
        self._waiting: deque[tuple[_Connection, str, bytes]] = deque()

    def put(self, connection: _Connection, key: str, body: bytes) -> None:
        if not self.capacity:
            self._store(connection, key, body)
            return
        if self.in_flight >= self.capacity + QUEUE:
            self.refused += 1
            connection.answer(SLOW_DOWN % (len(SLOW_DOWN_BODY), SLOW_DOWN_BODY))
            return
        self.in_flight += 1
        if self._serving < self.capacity:
            self._serving += 1
            self._start(connection, key, body)
        else:
            self._waiting.append((connection, key, body))

    def _start(self, connection: _Connection, key: str, body: bytes) -> None:
        asyncio.get_running_loop().call_later(SERVICE_S, self._finish, connection, key, body)

    def _finish(self, connection: _Connection, key: str, body: bytes) -> None:
        self.in_flight -= 1
        self._store(connection, key, body)
        if self._waiting:
            self._start(*self._waiting.popleft())
        else:
            self._serving -= 1

    def _store(self, connection: _Connection, key: str, body: bytes) -> None:
        self.objects[key] = body
        connection.answer(b'HTTP/1.1 200 OK\r\nETag: "e"\r\nContent-Length: 0\r\n\r\n')


class _Connection(asyncio.Protocol):
    def __init__(self, receiver: S3Receiver) -> None:
        self._receiver = receiver
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._body: list[bytes] = []
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"expect" and value.lower() == b"100-continue":
            self.answer(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        url, body = httptools.parse_url(self._url), b"".join(self._body)
        self._url, self._body = b"", []
        if self._parser.get_method() == b"PUT":
            self._receiver.put(self, url.path.decode(), body)
        else:  # the listing of incomplete multipart uploads at start
            self.answer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(NO_UPLOADS), NO_UPLOADS))

    def answer(self, response: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(response)


class ThreadedS3:
    def __init__(self) -> None:
        self.receiver = S3Receiver()
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(self._loop.create_server(
            lambda: _Connection(self.receiver), "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def set_capacity(self, capacity: int) -> None:
        self._loop.call_soon_threadsafe(setattr, self.receiver, "capacity", capacity)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def test_uploads_back_off_on_slow_down_and_recover(tmp_path: Path) -> None:
    records = list(iter_records(RECORDS, seed=7))
    source = tmp_path / "in.ndjson"
    port = free_port()
    server = ThreadedS3()
    daemon = None
    try:
        config = s3_stage_config(
            tmp_path, paths=[source], bucket="bucket", s3_endpoint=server.url, follow=True,
            api=f"127.0.0.1:{port}", sink=f"max_file_records = {FILE_RECORDS}",
            s3=f"upload_concurrency = {MAXIMUM}\nforce_path_style = true")
        env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
        write_ndjson(source, records[:RECORDS // 2])
        daemon = Daemon(config, tmp_path / "daemon.log", env=env)
        # S3 answers SlowDown: the limit comes down from its maximum
        wait_until(lambda: server.receiver.refused and scrape(port).get(LIMIT, MAXIMUM)
                   <= CAPACITY + QUEUE, timeout=60, what="the limit down to the capacity")
        lowered = scrape(port)[LIMIT]
        # S3 takes everything again: the limit climbs while uploads go on
        server.set_capacity(0)
        tail = tmp_path / "tail.ndjson"
        write_ndjson(tail, records[RECORDS // 2:])
        with source.open("ab") as out:
            out.write(tail.read_bytes())
        wait_until(lambda: scrape(port).get(LIMIT, 0) > lowered, timeout=60,
                   what="the limit up again")
        wait_until(lambda: sum(len(parse_csv(b)) - 1 for b in
                               list(server.receiver.objects.values())) >= RECORDS,
                   timeout=60, what="every record staged")
        time.sleep(0.2)
    finally:
        if daemon is not None:
            daemon.stop()
        server.close()
    rows: list[list[str]] = []
    for body in server.receiver.objects.values():
        header, *object_rows = parse_csv(body)
        assert header == BENCH_COLUMNS
        rows.extend(object_rows)
    assert_same_multiset(Counter(map(tuple, rows)),
                         Counter(map(tuple, expected_rows(records, BENCH_COLUMNS))))
    assert server.receiver.refused > 0
