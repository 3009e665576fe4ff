"""A minimal HTTP sink for benchmarks when nginx is not installed: answers every
POST with 200 `{}` (and the ingest written_batches shape is not needed: TD clients must
not depend on the body).  `python -m bench.http_sink PORT` prints READY.

It counts the records it was sent -- a postback request is one record, a Data Ingestion
body (`{"events": [...]}`) its events -- and answers `GET /stats` with
`{"requests": R, "records": N}`, so that a td row's delivered records are checked by
what arrived, not only by the streamer's summary."""

from __future__ import annotations

import sys

import orjson
from aiohttp import web

EVENTS_PREFIX = b'{"events":'


class Counts:
    def __init__(self) -> None:
        self.requests = 0
        self.records = 0

    async def ok(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        self.records += len(orjson.loads(body)["events"]) if body.startswith(
            EVENTS_PREFIX) else 1
        return web.Response(body=b"{}", content_type="application/json")

    async def stats(self, _request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"requests": self.requests,
                                               "records": self.records}),
                            content_type="application/json")


def main() -> None:
    counts = Counts()
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("GET", "/stats", counts.stats)
    app.router.add_route("POST", "/{tail:.*}", counts.ok)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print("READY", flush=True)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None,
                print=None)


if __name__ == "__main__":
    main()
