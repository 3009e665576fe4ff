"""Keys rotated in the shared credentials file (AWS_SHARED_CREDENTIALS_FILE rewritten)
after S3 refused the old ones (`ExpiredToken`): the daemon degrades, and at its next
attempt after the refusal it sees that the file changed and reads it again (new
clients), so what was held back is staged with the new keys, no signal needed.
Before 2026-12-05 the file was read once, at start: neither the retries nor a reload
(SIGHUP) took the new keys, only a restart.

S3 here is moto behind a forwarding proxy on loopback that answers `ExpiredToken` to
every request signed with the old access key id."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bench.gen import iter_records
from tests.fixtures.moto_s3 import MotoServer
from tests.helpers import (
    BENCH_COLUMNS,
    Daemon,
    assert_same_rows,
    expected_rows,
    free_port,
    health,
    read_rows,
    s3_stage_config,
    stop,
    wait_until,
    write_ndjson,
)

pytestmark = pytest.mark.timeout(120)

OLD, NEW = "ASIAOLDKEYEXAMPLE0001", "ASIANEWKEYEXAMPLE0002"
EXPIRED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ExpiredToken</Code>'
           b"<Message>The provided token has expired.</Message></Error>")


@contextlib.contextmanager
def refusing_old_key(upstream: str) -> Iterator[str]:
    """An endpoint that forwards to `upstream`, except requests signed with OLD."""
    loop = asyncio.new_event_loop()
    state: dict[str, object] = {}

    async def forward(request: web.Request) -> web.StreamResponse:
        if f"Credential={OLD}/" in request.headers.get("Authorization", ""):
            return web.Response(status=400, body=EXPIRED, content_type="application/xml")
        session = state["session"]
        assert isinstance(session, aiohttp.ClientSession)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with session.request(request.method, upstream + request.path_qs,
                                   headers=headers, data=await request.read()) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding",
                                         "content-encoding", "connection")}
            return web.Response(status=answer.status, body=body, headers=kept)

    async def start() -> tuple[web.AppRunner, int]:
        state["session"] = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, runner.addresses[0][1]

    runner, port = loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        async def cleanup() -> None:
            await runner.cleanup()
            await state["session"].close()  # type: ignore[union-attr]
        asyncio.run_coroutine_threadsafe(cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def write_credentials(path: Path, key: str) -> None:
    path.write_text(f"[default]\naws_access_key_id = {key}\n"
                    f"aws_secret_access_key = secret-of-{key}\n")


def test_rotated_shared_credentials_are_read_again_after_a_refusal(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str) -> None:
    records = list(iter_records(200, seed=3))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    credentials = tmp_path / "aws-credentials"
    write_credentials(credentials, OLD)
    api = free_port()
    # only the file: no keys in the environment (an empty one counts as none)
    env = {key: "" for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                               "AWS_SESSION_TOKEN", "AWS_PROFILE") if key in os.environ}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(credentials),
               AWS_CONFIG_FILE=str(tmp_path / "aws-config"), AWS_DEFAULT_REGION="us-east-1")
    with refusing_old_key(str(moto_s3.endpoint_url)) as endpoint:
        cfg = s3_stage_config(tmp_path, paths=[source], bucket=s3_bucket, s3_endpoint=endpoint,
                              prefix="stage/", follow=True, api=f"127.0.0.1:{api}",
                              sink="max_file_age_s = 0.5")
        daemon = Daemon(cfg, tmp_path / "daemon.log", env=env)
        try:
            wait_until(lambda: "ExpiredToken" in daemon.log, timeout=60,
                       what="S3 refusing the old key")
            _code, body = health(api)
            assert body["status"] == "degraded", body
            write_credentials(credentials, NEW)  # rotated in place, and nothing else
            s3 = moto_s3.s3()
            wait_until(lambda: len(read_rows(s3, s3_bucket, "stage/")[1]) >= len(records),
                       timeout=60, what="the records staged with the new key")
            wait_until(lambda: health(api)[1]["status"] == "ok", timeout=30,
                       what="/health ok again")
            summary = stop(daemon)
        finally:
            daemon.stop()
    _, rows = read_rows(moto_s3.s3(), s3_bucket, "stage/")
    assert_same_rows(sorted(rows), sorted(expected_rows(records, BENCH_COLUMNS)))
    assert summary["sinks"]["st"]["delivered"] == len(records)
    assert "secret-of-" not in daemon.log
