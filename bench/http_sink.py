"""A minimal HTTP sink for benchmarks when nginx is not installed: answers every
POST with 200 `{}` (and the ingest written_batches shape is not needed: TD clients must
not depend on the body).  `python -m bench.http_sink PORT` prints READY."""

from __future__ import annotations

import sys

from aiohttp import web


async def _ok(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=b"{}", content_type="application/json")


def main() -> None:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("POST", "/{tail:.*}", _ok)
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
