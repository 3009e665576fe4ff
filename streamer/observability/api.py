"""/metrics (Prometheus text) and /health (JSON per component) over aiohttp."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamer.observability.metrics import Metrics

log = logging.getLogger("streamer.api")


def health(metrics: Metrics, source_states: Callable[[], dict[str, str]],
           unhealthy_after_s: float) -> tuple[int, dict]:
    now = time.monotonic()
    sinks = {}
    unhealthy = degraded = False
    for name, stats in metrics.sinks.items():
        failing_for = now - stats.failing_since if stats.failing_since is not None else 0.0
        state = "ok" if failing_for == 0 else "retrying"
        if failing_for > unhealthy_after_s:
            state, unhealthy = "failing", True
        elif failing_for and stats.refused:  # retrying alone will not mend it
            state, degraded = "degraded", True
        sinks[name] = {"state": state, "failing_for_s": round(failing_for, 3),
                       "last_error": stats.last_error if failing_for else None,
                       "in_flight": stats.in_flight}
        if stats.unloaded_windows:  # loads under way or waiting: shown, not a failure
            sinks[name]["unloaded_windows"] = dict(stats.unloaded_windows)
        if stats.failed_windows:  # loads that need an operator: the sink itself goes on
            degraded = True
            sinks[name]["failed_windows"] = dict(stats.failed_windows)
            if state == "ok":
                sinks[name]["state"] = "degraded"
        if stats.refusals:  # every record dead-lettered: an operator must act
            degraded = True
            sinks[name].update(stats.refusals)
            if state == "ok":
                sinks[name]["state"] = "degraded"
    checkpoints = checkpoint_health(metrics, now)
    degraded = degraded or any(c["state"] != "ok" for c in checkpoints.values())
    sources = {n: {"state": s} for n, s in source_states().items()}
    for name, source in sources.items():
        if source["state"] == "unreachable":  # reads nothing until its input answers
            degraded = True
            source["last_error"] = metrics.source(name).unreachable
        if unread := metrics.source(name).unread:  # files found and not readable
            degraded = True
            source["unread"] = dict(unread)
    body = {"status": "failing" if unhealthy else "degraded" if degraded else "ok",
            "sources": sources, "sinks": sinks, "checkpoints": checkpoints}
    return (503 if unhealthy else 200), body


def checkpoint_health(metrics: Metrics, now: float) -> dict[str, dict]:
    """Per checkpoint: "ok", or "failing" (degraded: data flows, but a restart
    would read again everything since `last_saved_s` ago) with the error and since when."""
    out = {}
    for name, stats in list(metrics.checkpoints.items()):
        since = stats.failing_since
        out[name] = {"state": "ok" if since is None else "failing",
                     "last_saved_s": round(now - stats.last_saved, 3),
                     "failures": stats.failures, "last_error": stats.last_error,
                     "failing_since": None if since is None else datetime.fromtimestamp(
                         time.time() - (now - since), UTC).isoformat(timespec="seconds")}
    return out


Handler = Callable[[web.Request], Awaitable[web.Response]]


def bind_listen(listen: str) -> socket.socket:
    """A listening socket on `listen` (HOST:PORT): bound before workers fork, so a
    taken port is one error before anything starts (OSError otherwise)."""
    host, _, port = listen.rpartition(":")
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), int(port), type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def serve(listen: str, routes: dict[str, Handler],
                sock: socket.socket | None = None) -> tuple[web.AppRunner, int]:
    """GET `routes` on `listen` (HOST:PORT, port 0 picks one), or on `sock` already
    listening; the runner and the port."""
    host, _, port = listen.rpartition(":")
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if sock is not None:
        await web.SockSite(runner, sock).start()
        return runner, sock.getsockname()[1]
    site = web.TCPSite(runner, host.strip("[]"), int(port))
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


class ApiServer:
    def __init__(self, listen: str, metrics: Metrics, source_states: Callable[[], dict[str, str]],
                 unhealthy_after_s: float) -> None:
        self._listen = listen
        self._metrics = metrics
        self._source_states = source_states
        self._unhealthy_after_s = unhealthy_after_s
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        self._runner, self.port = await serve(
            self._listen, {"/metrics": self._metrics_handler, "/health": self._health_handler})
        log.info("metrics and health on http://%s:%d/", self._listen.rpartition(":")[0],
                 self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def exposition(self) -> bytes:
        return generate_latest(self._metrics.registry)

    async def _metrics_handler(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.exposition(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health_handler(self, _request: web.Request) -> web.Response:
        status, body = health(self._metrics, self._source_states, self._unhealthy_after_s)
        return web.json_response(body, status=status)
