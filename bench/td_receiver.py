"""A TD-like receiver with faults and a fixed capacity, for the adaptive
concurrency rows of the bench (and the capacity test, in a thread).

    python -m bench.td_receiver PORT [--capacity K --queue Q --service-ms S]
                                     [--fail-rate 0.3] [--throttle-rate 0.0005] [--seed 1]

prints READY, answers every POST, and `GET /stats` with its counters as JSON
(``json_lines_records``: the records of the bodies that are JSON lines, i.e. end
with a newline), `GET /sample` with a uniform sample of the served bodies, one a
line (``--sample N``: N bodies, reservoir sampling).

* ``--capacity K``: K requests are served at once, each taking ``--service-ms``;
  up to Q more wait in a FIFO queue (their latency rises with it); above K + Q a
  request is refused at once with 503.  Without it every request is answered
  at once.
* ``--fail-rate``: that share of requests fails at random, whatever the load:
  ``--drop-share`` of them (default half) a dropped connection (closed without
  an answer), the others answered 500.
* ``--throttle-rate``: that share is answered 429 with ``Retry-After: 1``.
* ``--throttle-at S --throttle-for D``: every POST from S seconds after the
  first one, for D seconds, is answered 429 with ``Retry-After: 1``.
* ``--latency``: each served record's ``"wt"`` field (its write time, wall
  clock microseconds: bench/latency.py) is subtracted from the time it was
  served; ``/stats`` gives their count and percentiles (``latency_ms``), and
  the same for the records written ``--warmup-s`` or more after the first one
  (``steady_latency_ms``: the streamer's start-up left out).

Raw asyncio protocol + llhttp (httptools), uvloop when installed: callbacks,
no task per request, so that it is not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import time
from collections import deque
from typing import Any

import httptools
import orjson

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
REFUSED = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
FAILED = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
WRITE_TIME = re.compile(rb'"wt":([0-9]+)')
THROTTLED = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"


class Receiver:
    """The counters and the capacity of one receiver (one event loop)."""

    def __init__(self, *, capacity: int = 0, queue: int = 0, service_s: float = 0.0,
                 fail_rate: float = 0.0, drop_share: float = 0.5,
                 throttle_rate: float = 0.0, seed: int = 1,
                 keep_bodies: bool = False, throttle_at: float = 0.0,
                 throttle_for: float = 0.0, latency: bool = False,
                 warmup_s: float = 0.0, sample: int = 0) -> None:
        self.capacity = capacity
        self.queue_size = queue
        self.service_s = service_s
        self.fail_rate = fail_rate
        self.drop_share = drop_share
        self.throttle_rate = throttle_rate
        self.keep_bodies = keep_bodies
        self.throttle_at = throttle_at
        self.throttle_for = throttle_for
        self.latency = latency
        self.warmup_s = warmup_s
        self.sample_size = sample
        self._sample_rng = random.Random(seed)
        self.write_times_us: list[int] = []  # "wt" of every served record
        self.latencies_us: list[int] = []  # its served time - its write time
        self._first_post = 0.0
        self.bodies: list[bytes] = []
        self.sample: list[bytes] = []
        self.counts = {"requests": 0, "served": 0, "refused": 0, "failed": 0, "dropped": 0,
                       "throttled": 0, "served_bytes": 0, "json_lines_records": 0}
        self.in_flight = 0
        self.max_in_flight = 0
        self.events: list[tuple[float, bool]] = []  # (arrival, refused) of every request
        self._rng = random.Random(seed)
        self._serving = 0
        self._waiting: deque[tuple[Connection, bytes]] = deque()

    def stats(self) -> dict[str, Any]:
        """Totals, and the share refused over the second half of the run (from
        the first request to the last) so that the start-up does not count."""
        out: dict[str, Any] = dict(self.counts, max_in_flight=self.max_in_flight)
        events = self.events
        if events:
            middle = (events[0][0] + events[-1][0]) / 2
            late = [refused for at, refused in events if at >= middle]
            out["second_half_requests"] = len(late)
            out["second_half_refused_share"] = sum(late) / len(late)
            span = events[-1][0] - events[0][0]
            out["served_per_s"] = self.counts["served"] / span if span > 0 else 0.0
        if self.latency:
            out["latency_ms"] = percentiles_ms(self.latencies_us)
            out["steady_latency_ms"] = percentiles_ms(
                after_warmup(self.write_times_us, self.latencies_us, self.warmup_s))
        return out

    def request(self, connection: Connection, body: bytes) -> None:
        counts = self.counts
        counts["requests"] += 1
        if self.throttle_for:
            now = time.monotonic()
            self._first_post = self._first_post or now
            if 0 <= now - self._first_post - self.throttle_at < self.throttle_for:
                counts["throttled"] += 1
                connection.answer(THROTTLED)
                return
        if self.fail_rate or self.throttle_rate:
            draw = self._rng.random()
            if draw < self.throttle_rate:
                counts["throttled"] += 1
                connection.answer(THROTTLED)
                return
            if draw < self.throttle_rate + self.fail_rate:
                if self._rng.random() < self.drop_share:
                    counts["dropped"] += 1
                    connection.drop()
                else:
                    counts["failed"] += 1
                    connection.answer(FAILED)
                return
        if not self.capacity:
            self._served(connection, body)
            return
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        refused = self.in_flight > self.capacity + self.queue_size
        self.events.append((time.monotonic(), refused))
        if refused:
            self.in_flight -= 1
            counts["refused"] += 1
            connection.answer(REFUSED)
        elif self._serving < self.capacity:
            self._serving += 1
            self._start(connection, body)
        else:
            self._waiting.append((connection, body))

    def _start(self, connection: Connection, body: bytes) -> None:
        asyncio.get_running_loop().call_later(self.service_s, self._finish, connection, body)

    def _finish(self, connection: Connection, body: bytes) -> None:
        self.in_flight -= 1
        self._served(connection, body)
        if self._waiting:  # the place goes to the request that waited longest
            self._start(*self._waiting.popleft())
        else:
            self._serving -= 1

    def _keep_in_sample(self, body: bytes, served: int) -> None:
        """Reservoir sampling: every served body is in the sample with the same chance."""
        if len(self.sample) < self.sample_size:
            self.sample.append(body)
        elif (slot := self._sample_rng.randrange(served)) < self.sample_size:
            self.sample[slot] = body

    def _served(self, connection: Connection, body: bytes) -> None:
        counts = self.counts
        counts["served"] += 1
        counts["served_bytes"] += len(body)
        if body.endswith(b"\n"):
            counts["json_lines_records"] += body.count(b"\n")
        if self.sample_size:
            self._keep_in_sample(body.rstrip(b"\n"), counts["served"])
        if self.keep_bodies:
            self.bodies.append(body)
        if self.latency:
            now_us = time.time_ns() // 1000
            write_times = [int(wt) for wt in WRITE_TIME.findall(body)]
            self.write_times_us.extend(write_times)
            self.latencies_us.extend(now_us - wt for wt in write_times)
        connection.answer(OK)


def after_warmup(write_times_us: list[int], latencies_us: list[int],
                 warmup_s: float) -> list[int]:
    """The latencies of the records written ``warmup_s`` or more after the first."""
    if not write_times_us:
        return []
    start = min(write_times_us) + int(warmup_s * 1_000_000)
    return [lat for wt, lat in zip(write_times_us, latencies_us, strict=True) if wt >= start]


def percentiles_ms(latencies_us: list[int]) -> dict[str, float]:
    """count, p50, p90, p99 and max of latencies in microseconds, in milliseconds."""
    if not latencies_us:
        return {"count": 0}
    ordered = sorted(latencies_us)
    last = len(ordered) - 1

    def at(q: float) -> float:
        return ordered[round(q * last)] / 1000

    return {"count": len(ordered), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99),
            "max": ordered[-1] / 1000}


class Connection(asyncio.Protocol):
    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._parser = httptools.HttpRequestParser(self)
        self._body: list[bytes] = []
        self._url = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.drop()

    def on_message_begin(self) -> None:
        self._url = b""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self._body)
        self._body = []
        if self._parser.get_method() == b"GET":
            self.answer_get()
            return
        self._receiver.request(self, body)

    def answer_get(self) -> None:
        receiver = self._receiver
        if self._url == b"/sample":
            content = b"\n".join(receiver.sample)
        else:
            content = orjson.dumps(receiver.stats())
        self.answer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(content), content))

    def answer(self, response: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(response)

    def drop(self) -> None:
        if self._transport is not None:
            self._transport.abort()


async def serve(receiver: Receiver, port: int = 0) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: Connection(receiver), "127.0.0.1", port,
                                    backlog=1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--capacity", type=int, default=0)
    parser.add_argument("--queue", type=int, default=0)
    parser.add_argument("--service-ms", type=float, default=0.0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--drop-share", type=float, default=0.5,
                        help="of the failures, the share dropped (the rest: 500)")
    parser.add_argument("--throttle-rate", type=float, default=0.0)
    parser.add_argument("--throttle-at", type=float, default=0.0,
                        help="seconds after the first POST when every POST gets 429")
    parser.add_argument("--throttle-for", type=float, default=0.0,
                        help="for how many seconds (0: never)")
    parser.add_argument("--latency", action="store_true",
                        help='keep served time - "wt" of every record')
    parser.add_argument("--warmup-s", type=float, default=0.0,
                        help="steady_latency_ms leaves out the records written before")
    parser.add_argument("--sample", type=int, default=0,
                        help="keep a uniform sample of N served bodies for GET /sample")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    receiver = Receiver(capacity=args.capacity, queue=args.queue,
                        service_s=args.service_ms / 1000, fail_rate=args.fail_rate,
                        drop_share=args.drop_share,
                        throttle_rate=args.throttle_rate, seed=args.seed,
                        throttle_at=args.throttle_at, throttle_for=args.throttle_for,
                        latency=args.latency, warmup_s=args.warmup_s,
                        sample=args.sample)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass

    async def run() -> None:
        server = await serve(receiver, args.port)
        print("READY", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()
