"""Temporary AWS credentials that expired (or a session token S3 does not take): S3
answers 400 `ExpiredToken` / `InvalidToken` to every request, and retrying with the same
credentials never mends it. Like a missing bucket, a one-shot run says so before reading
anything (exit 2) instead of retrying until it is killed (before 2026-12-04 it never
ended). An S3-like endpoint on loopback that answers every request with the error."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.gen import iter_records
from tests.helpers import run_cli, s3_stage_config, write_ndjson

pytestmark = pytest.mark.timeout(90)
TOKEN = "expired-session-token-77ab"  # must appear nowhere in the output


@contextlib.contextmanager
def refusing_s3(code: str, message: str) -> Iterator[str]:
    """An endpoint URL whose every answer is HTTP 400 with S3's XML error `code`."""
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()
    answer = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/xml\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    loop = asyncio.new_event_loop()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                writer.write(answer)
                await writer.drain()
        writer.close()

    server = loop.run_until_complete(asyncio.start_server(serve, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@pytest.mark.parametrize(("code", "message"), [
    ("ExpiredToken", "The provided token has expired."),
    ("InvalidToken", "The provided token is malformed or otherwise invalid."),
])
def test_a_one_shot_run_with_expired_credentials_reads_nothing(
        tmp_path: Path, code: str, message: str) -> None:
    source = tmp_path / "in.ndjson"
    write_ndjson(source, list(iter_records(10, seed=1)))
    with refusing_s3(code, message) as endpoint:
        cfg = s3_stage_config(tmp_path, paths=[source], bucket="stage-bucket",
                              s3_endpoint=endpoint, prefix="stage/")
        done = run_cli("run", "-c", str(cfg), timeout=60,
                       env={"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s",
                            "AWS_SESSION_TOKEN": TOKEN, "AWS_DEFAULT_REGION": "us-east-1"})
    assert done.code == 2, done.stderr[-3000:]
    assert (f"sinks.st.url: s3://stage-bucket/stage/: {code}: {message}; nothing was read"
            in done.stderr), done.stderr[-3000:]
    assert not (tmp_path / "data" / "checkpoints").exists()
    assert TOKEN not in done.stderr
