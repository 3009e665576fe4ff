"""The supervisor's /metrics and /health: each worker's, merged.

Every worker serves its own API on a loopback port it writes to its state
directory; a scrape of the supervisor fetches them all and adds a `worker`
label to every sample (sum by it in queries); its own process metrics carry
worker="supervisor".  /health is 503 when any worker
is failing or does not answer, "degraded" (200) when one is; a worker that ended
with exit 0 (its share of a one-shot run done) is "finished", not a failure.
/health asks each worker and waits LIVE_WITHIN_S for its answer, else takes its last
status, which the supervisor asks for every HEALTH_EVERY_S: waiting for a worker's
answer as long as /metrics does (5 s) made a probe with a short timeout (Kubernetes:
1 s) see a timeout instead of a 503 while a worker was hung or stopped (SIGSTOP); the
last status alone was up to a second old (a worker just started, a failure just seen).
A worker that ended leaves its last exposition in its state directory
(`metrics.prom`, written as its API stops): served in its place, so its counters
neither vanish nor go back while the run goes on (a restarted worker's start
from zero again: a reset, as with any restarted process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from streamer.datadir.files import read_json
from streamer.observability.api import serve

log = logging.getLogger("streamer.api")

FETCH_TIMEOUT_S = 5.0
HEALTH_EVERY_S = 1.0  # each worker's /health asked for this often
HEALTH_WITHIN_S = 3.0  # a worker whose last answer is older counts as down
LIVE_WITHIN_S = 0.5  # /health waits this long for a worker's own answer, then its last


@dataclass(frozen=True)
class _Status:
    """A worker's last /health answer (None: none, its reason said) and when it came."""

    answer: tuple[int, str] | None
    at: float
    reason: str = ""


def merge_exposition(texts: dict[int, str], extra: Iterable[Metric] = ()) -> bytes:
    """Prometheus text of every worker's families, samples labelled by worker, and
    the supervisor's own (`extra`, labelled already): one family per name."""
    families: dict[str, Metric] = {}

    def merged(family: Metric) -> Metric:
        found = families.get(family.name)
        if found is None:
            found = families[family.name] = Metric(family.name, family.documentation,
                                                   family.type, family.unit)
        return found

    for worker, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            merged(family).samples.extend(
                sample._replace(labels={**sample.labels, "worker": str(worker)})
                for sample in family.samples)
    for family in extra:
        merged(family).samples.extend(family.samples)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> list[Metric]:
        return self._metrics


class WorkerApi:
    def __init__(self, listen: str, port_files: dict[int, Path], final_files: dict[int, Path],
                 own_metrics: Callable[[], list[Metric]],
                 sock: socket.socket | None = None,
                 finished: Callable[[int], bool] = lambda _worker: False) -> None:
        self._listen = listen
        self._finished = finished  # the worker ended with exit 0
        self._sock = sock  # bound before the workers forked
        self._port_files = port_files
        self._final_files = final_files  # a worker's last exposition, once it ended
        self._own_metrics = own_metrics
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._status: dict[int, _Status] = {}
        self._watchers: list[asyncio.Task] = []
        self.port: int | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S))
        self._runner, self.port = await serve(
            self._listen, {"/metrics": self._metrics_handler, "/health": self._health_handler},
            self._sock)
        self._watchers = [asyncio.create_task(self._watch(w), name=f"health of worker {w}")
                          for w in sorted(self._port_files)]
        log.info("metrics and health of %d workers on http://%s:%d/", len(self._port_files),
                 self._listen.rpartition(":")[0], self.port)

    async def stop(self) -> None:
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _fetch(self, worker: int, path: str) -> tuple[int, str] | None:
        answer = await self._fetch_or_why(worker, path)
        return answer if isinstance(answer, tuple) else None

    async def _fetch_or_why(self, worker: int, path: str) -> tuple[int, str] | str:
        """The worker's answer, or why there is none."""
        port = read_json(self._port_files[worker], None)
        if not isinstance(port, int) or self._session is None:
            return "its API is not listening yet"
        try:
            async with self._session.get(f"http://127.0.0.1:{port}{path}") as resp:
                return resp.status, await resp.text()
        except TimeoutError:
            return f"no answer within {FETCH_TIMEOUT_S:g} s"
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"

    async def _watch(self, worker: int) -> None:
        """Asks the worker for its /health every HEALTH_EVERY_S, the last answer kept."""
        while True:
            asked = time.monotonic()
            answer = await self._fetch_or_why(worker, "/health")
            self._status[worker] = _Status(*((answer, time.monotonic())
                                             if isinstance(answer, tuple)
                                             else (None, time.monotonic(), answer)))
            await asyncio.sleep(max(0.0, HEALTH_EVERY_S - (time.monotonic() - asked)))

    async def _fetch_all(self, path: str) -> dict[int, tuple[int, str] | None]:
        workers = sorted(self._port_files)
        answers = await asyncio.gather(*(self._fetch(w, path) for w in workers))
        return dict(zip(workers, answers, strict=True))

    async def _metrics_handler(self, _request: web.Request) -> web.Response:
        answers = await self._fetch_all("/metrics")
        texts = {w: a[1] for w, a in answers.items() if a is not None and a[0] == 200}
        for worker in answers.keys() - texts.keys():
            with contextlib.suppress(FileNotFoundError):
                texts[worker] = self._final_files[worker].read_text()
        body = merge_exposition(texts, self._own_metrics())
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _last_health(self, worker: int) -> tuple[int, str] | str:
        """The worker's last /health answer, or why it counts as down."""
        last = self._status.get(worker)
        if last is None:
            return "no answer yet (starting)"
        silent = time.monotonic() - last.at
        if silent > HEALTH_WITHIN_S:  # hung, stopped (SIGSTOP), or its host overloaded
            return f"no answer for {silent:.1f} s"
        return last.answer if last.answer is not None else last.reason

    async def _health_now(self, worker: int) -> tuple[int, str] | str:
        """The worker's answer if it comes within LIVE_WITHIN_S (kept as its last),
        else its last answer (down once HEALTH_WITHIN_S old)."""
        try:
            answer = await asyncio.wait_for(self._fetch_or_why(worker, "/health"),
                                            LIVE_WITHIN_S)
        except TimeoutError:
            return self._last_health(worker)
        if isinstance(answer, tuple):
            self._status[worker] = _Status(answer, time.monotonic())
        return answer

    async def _health_handler(self, _request: web.Request) -> web.Response:
        workers, ok = {}, True
        order = sorted(self._port_files)
        answers = await asyncio.gather(*(self._health_now(w) for w in order))
        for worker, answer in zip(order, answers, strict=True):
            if isinstance(answer, str) and self._finished(worker):
                workers[str(worker)] = {"status": "finished"}
                continue
            if isinstance(answer, str):
                workers[str(worker)] = {"status": "down", "reason": answer}
                ok = False
                continue
            status, text = answer
            try:
                workers[str(worker)] = orjson.loads(text)
            except orjson.JSONDecodeError:
                workers[str(worker)] = {"status": "unreadable"}
            ok = ok and status == 200
        degraded = any(w.get("status") == "degraded" for w in workers.values())
        body = {"status": "failing" if not ok else "degraded" if degraded else "ok",
                "workers": workers}
        return web.json_response(body, status=200 if ok else 503)

