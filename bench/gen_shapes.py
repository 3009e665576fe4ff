"""The record shapes besides the default one of ``bench.gen``: small numeric records and
large log records.  Deterministic like ``bench.gen``: the same ``n`` and ``seed`` give
the same records, ``iter_records(shape, n, seed)`` yields exactly the dicts written.

* ``small``: about 300 bytes, 20 flat fields, mostly integers and floats, a few
  nulls (``battery``, ``signal``, ``alarm``, ``note``), one ISO-8601 UTC timestamp
  string with milliseconds, short strings; no nesting.
* ``large``: about 2 KB log records: 20 top-level fields, of which ``http``,
  ``user``, ``kubernetes``, ``labels``, ``error`` are objects (nested twice in
  places) and ``tags``, ``metrics`` arrays, long ``message`` and ``stack`` strings.
  Nested values land in a stage column as their JSON text.

Both give every 50th record a string that needs CSV quoting or is non-ASCII.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

from bench.gen import SPECIAL_EVERY, SPECIAL_MESSAGES

__all__ = ["LARGE_TYPES", "SMALL_TYPES", "iter_large", "iter_small"]

_BASE_MS = 1_700_000_000_000

#: Column -> DuckDB type, in the order of the records' keys.
SMALL_TYPES: dict[str, str] = {
    "ts": "VARCHAR", "device": "BIGINT", "seq": "BIGINT", "temp": "DOUBLE",
    "humidity": "DOUBLE", "pressure": "DOUBLE", "voltage": "DOUBLE", "current": "DOUBLE",
    "power": "DOUBLE", "rpm": "BIGINT", "errors": "BIGINT", "status": "BIGINT",
    "lat": "DOUBLE", "lon": "DOUBLE", "battery": "DOUBLE", "signal": "BIGINT",
    "firmware": "VARCHAR", "site": "VARCHAR", "alarm": "VARCHAR", "note": "VARCHAR",
}  # fmt: skip

LARGE_TYPES: dict[str, str] = {
    "time": "BIGINT", "ts": "VARCHAR", "level": "VARCHAR", "logger": "VARCHAR",
    "host": "VARCHAR", "service": "VARCHAR", "message": "VARCHAR", "stack": "VARCHAR",
    "http": "JSON", "user": "JSON", "kubernetes": "JSON", "labels": "JSON",
    "tags": "JSON", "metrics": "JSON", "error": "JSON", "request_id": "VARCHAR",
    "trace_id": "VARCHAR", "span_id": "VARCHAR", "duration_ms": "DOUBLE",
    "bytes": "BIGINT",
}  # fmt: skip

_SITES = ("plant-a", "plant-b", "dock-3", "lab", "roof", "yard-7")
_FIRMWARE = ("1.4.2", "1.4.3", "2.0.0-rc1", "2.0.1")
_ALARMS = ("overheat", "low-battery", "door open", "vibration")
_WORDS = (
    "request", "handled", "upstream", "connection", "timeout", "retrying", "cache",
    "miss", "user", "session", "token", "refreshed", "payload", "validated", "queue",
    "drained", "worker", "started", "shard", "rebalanced", "latency", "budget",
    "exceeded", "backend", "replica", "lag", "snapshot", "written", "compaction",
    "finished", "in", "after", "with", "the", "for", "of", "and", "ms", "bytes",
)
_FRAMES = (
    'File "/srv/app/handlers/orders.py", line 212, in create_order',
    'File "/srv/app/db/pool.py", line 88, in acquire',
    'File "/usr/lib/python3.12/asyncio/tasks.py", line 520, in wait_for',
    'File "/srv/app/clients/payments.py", line 47, in charge',
    'File "/srv/app/middleware/auth.py", line 131, in __call__',
)
_ERRORS = ("TimeoutError", "ConnectionResetError", "KeyError", "ValueError")
_ROLES = ("admin", "reader", "writer", "billing", "support", "ops")
_LEVELS = ("INFO",) * 10 + ("DEBUG",) * 3 + ("WARN",) * 2 + ("ERROR",)
_METHODS = ("GET",) * 5 + ("POST",) * 2 + ("PUT", "DELETE")
_STATUSES = (200,) * 20 + (201, 204, 301, 304, 400, 401, 403, 404, 429, 500, 503)
_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1",
    "curl/8.4.0",
    "okhttp/4.12.0",
)


def _iso_ms(ms: int) -> str:
    sec, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{milli:03d}Z"


def _special(i: int) -> str | None:
    return SPECIAL_MESSAGES[(i // SPECIAL_EVERY) % len(SPECIAL_MESSAGES)] \
        if i % SPECIAL_EVERY == 0 else None


def iter_small(n: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    rand, randint, gauss = rng.random, rng.randrange, rng.gauss
    for i in range(n):
        device = randint(1, 5000)
        temp = round(gauss(21.5, 6.0), 2)
        voltage = round(228 + gauss(0, 3.5), 3)
        current = round(abs(gauss(4.0, 2.0)), 3)
        alarm = _ALARMS[randint(len(_ALARMS))] if temp > 33 else None
        yield {
            "ts": _iso_ms(_BASE_MS + i * 7 + randint(7)),
            "device": device,
            "seq": i,
            "temp": temp,
            "humidity": round(rand() * 100, 1),
            "pressure": round(1013.25 + gauss(0, 8), 2),
            "voltage": voltage,
            "current": current,
            "power": round(voltage * current, 1),
            "rpm": randint(0, 6000),
            "errors": randint(4) if rand() < 0.1 else 0,
            "status": _STATUSES[randint(len(_STATUSES))],
            "lat": round(35.0 + rand() * 10, 6),
            "lon": round(-120.0 + rand() * 40, 6),
            "battery": None if device % 3 == 0 else round(rand() * 100, 1),
            "signal": None if rand() < 0.2 else -randint(40, 110),
            "firmware": _FIRMWARE[device % len(_FIRMWARE)],
            "site": _SITES[device % len(_SITES)],
            "alarm": alarm,
            "note": _special(i),
        }


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(_WORDS, k=words))


def iter_large(n: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    rand, randint = rng.random, rng.randrange
    for i in range(n):
        level = _LEVELS[randint(len(_LEVELS))]
        status = _STATUSES[randint(len(_STATUSES))]
        failed = level == "ERROR" or status >= 500
        service = f"svc-{randint(12):02d}"
        message = _sentence(rng, randint(70, 230))
        special = _special(i)
        if special is not None:
            message = f"{special} {message}"
        ms = _BASE_MS + i * 3
        yield {
            "time": ms // 1000,
            "ts": _iso_ms(ms),
            "level": level,
            "logger": f"app.{service}.handlers",
            "host": f"node-{randint(64):03d}.prod.example.internal",
            "service": service,
            "message": message,
            "stack": "Traceback (most recent call last):\n  "
                     + "\n  ".join(rng.choices(_FRAMES, k=randint(2, 6)))
                     if failed else None,
            "http": {
                "method": _METHODS[randint(len(_METHODS))],
                "path": f"/v{randint(1, 3)}/orders/{randint(10**6)}/items",
                "status": status,
                "headers": {"user-agent": _AGENTS[randint(len(_AGENTS))],
                            "accept": "application/json", "x-retry": randint(3)},
            },
            "user": {"id": randint(10**7), "name": f"user{randint(10**5)}",
                     "roles": rng.sample(_ROLES, randint(1, 4)), "verified": rand() < 0.8},
            "kubernetes": {"namespace": "prod", "pod": f"{service}-{randint(16**6):06x}",
                           "node": f"ip-10-0-{randint(256)}-{randint(256)}",
                           "labels": {"app": service, "tier": "backend",
                                      "version": f"2.{randint(30)}.{randint(9)}"}},
            "labels": {"team": "payments", "region": "eu-west-1", "canary": rand() < 0.05},
            "tags": rng.sample(_WORDS, randint(0, 6)),
            "metrics": [round(rand() * 1000, 3) for _ in range(randint(2, 8))],
            "error": {"type": _ERRORS[randint(len(_ERRORS))], "retryable": rand() < 0.5,
                      "message": _sentence(rng, 12)} if failed else None,
            "request_id": f"{rng.getrandbits(128):032x}",
            "trace_id": f"{rng.getrandbits(128):032x}",
            "span_id": f"{rng.getrandbits(64):016x}",
            "duration_ms": round(rand() * 900 + 0.5, 3),
            "bytes": randint(200, 200_000),
        }
