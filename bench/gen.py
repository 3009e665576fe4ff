"""Deterministic NDJSON generator for benchmarks.

Every record has the same 20 fields, in the order of ``FIELDS``: integers, floats,
short strings, nulls (``optional`` in about a third of the records), an epoch-seconds
integer ``time`` and an ISO-8601 UTC string ``ts`` for the same second.  Every 50th
record (index 0, 50, 100, ...) carries a ``message`` that needs CSV quoting or is
non-ASCII (comma, double quote, backslash, accented letters, CJK, emoji).

The output depends only on ``n`` and ``seed``: the same arguments give a
byte-identical file, and ``iter_records(n, seed)`` yields exactly the dicts that
``generate`` serialises (one ``orjson.dumps`` line each).

Speed: value pools are built once per call, random indices come from one
``randbytes`` call per column per chunk, and lines are written in ~1.5 MB blocks;
1,000,000 records take a couple of seconds.

Other shapes (``SHAPES``): ``small`` numeric records of about 300 bytes and ``large``
log records of about 2 KB with nested objects (``bench/gen_shapes.py``); ``default`` is
the shape above.  ``shape_types(shape)`` gives a shape's columns and DuckDB types.

CLI: ``python -m bench.gen OUT N [--seed S] [--shape default|small|large]``
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from array import array
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "COLUMN_TYPES",
    "FIELDS",
    "GEN_VERSION",
    "SHAPES",
    "SPECIAL_EVERY",
    "SPECIAL_MESSAGES",
    "generate",
    "iter_records",
    "iter_shape",
    "shape_types",
]

#: Bump when the output for a given (n, seed) changes, so cached inputs are rebuilt.
GEN_VERSION = 1

FIELDS: tuple[str, ...] = (
    "time",
    "ts",
    "host",
    "service",
    "level",
    "region",
    "method",
    "path",
    "status",
    "latency_ms",
    "bytes_in",
    "bytes_out",
    "user_id",
    "session",
    "ratio",
    "score",
    "tag",
    "message",
    "trace_id",
    "optional",
)

#: DuckDB column types, e.g. for ``read_ndjson(..., columns=...)`` or a target table.
COLUMN_TYPES: dict[str, str] = {
    "time": "BIGINT",
    "ts": "VARCHAR",
    "host": "VARCHAR",
    "service": "VARCHAR",
    "level": "VARCHAR",
    "region": "VARCHAR",
    "method": "VARCHAR",
    "path": "VARCHAR",
    "status": "BIGINT",
    "latency_ms": "DOUBLE",
    "bytes_in": "BIGINT",
    "bytes_out": "BIGINT",
    "user_id": "BIGINT",
    "session": "VARCHAR",
    "ratio": "DOUBLE",
    "score": "DOUBLE",
    "tag": "VARCHAR",
    "message": "VARCHAR",
    "trace_id": "VARCHAR",
    "optional": "VARCHAR",
}

#: The record shapes ``generate`` writes: ``default`` (above), ``small``, ``large``.
SHAPES: tuple[str, ...] = ("small", "default", "large")

#: Every record whose index is a multiple of this gets a message from SPECIAL_MESSAGES.
SPECIAL_EVERY = 50

#: Messages that need CSV quoting (comma, double quote) or are non-ASCII; cycled in order.
SPECIAL_MESSAGES: tuple[str, ...] = (
    "disk full, retrying",
    'user said "hello"',
    "café naïve résumé",
    'Ünïcödé, "quoted" ✓ 日本語',
    "launch 🚀 ok",
    "path C:\\temp\\x, done",
    '"',
    ",",
)

_BASE_TIME = 1_700_000_000  # 2023-11-14T22:13:20Z
_RECORDS_PER_SECOND_SHIFT = 3  # time advances by one second every 8 records
_CHUNK = 8192
_WRITE_BLOCK = 4096  # records per write() call (~1.5 MB; bigger blocks were slower)

_SERVICES = ("api", "auth", "cart", "search", "billing", "mail", "cdn", "db")
_LEVELS = ("INFO",) * 10 + ("DEBUG",) * 3 + ("WARN",) * 2 + ("ERROR",)
_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-ne-1")
_METHODS = ("GET",) * 5 + ("POST",) * 2 + ("PUT", "DELETE")
_PATHS = (
    "/v1/users",
    "/v1/orders",
    "/v1/items",
    "/v1/cart",
    "/health",
    "/login",
    "/logout",
    "/v2/search",
    "/static/app.js",
    "/v1/pay",
)
_STATUSES = (200,) * 20 + (201, 204, 301, 304, 400, 401, 403, 404, 404, 429, 500, 503)
_TAGS = ("red", "blue", "green", "beta", "new", "canary", "v2", "gold")
_MESSAGES = (
    "request done",
    "cache miss",
    "cache hit",
    "user login ok",
    "token refreshed",
    "slow query",
    "upstream timeout",
    "retry scheduled",
    "payment accepted",
    "item not found",
    "rate limited",
    "session expired",
    "config reloaded",
    "queue drained",
    "GC pause",
    "conn reset",
)
_OPTIONALS = ("alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta")


def _pool256(rng: random.Random, choices: tuple[Any, ...]) -> list[Any]:
    """A 256-entry pool drawn from ``choices`` (index it with a random byte)."""
    return [choices[rng.randrange(len(choices))] for _ in range(256)]


class _Pools:
    """Per-call value pools (built from the seeded RNG, so they depend on the seed)."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "host",
        "latency",
        "level",
        "message",
        "method",
        "optional",
        "path",
        "ratio",
        "region",
        "score",
        "service",
        "session",
        "status",
        "tag",
        "trace",
    )

    def __init__(self, rng: random.Random) -> None:
        hosts = tuple(f"web-{k:02d}" for k in range(1, 49))
        self.host = _pool256(rng, hosts)
        self.service = _pool256(rng, _SERVICES)
        self.level = _pool256(rng, _LEVELS)
        self.region = _pool256(rng, _REGIONS)
        self.method = _pool256(rng, _METHODS)
        self.path = _pool256(rng, _PATHS)
        self.status = _pool256(rng, _STATUSES)
        self.tag = _pool256(rng, _TAGS)
        self.message = _pool256(rng, _MESSAGES)
        # optional: None in entries 0, 3, 6, ... -> 86/256 ~ 1/3 of records.
        self.optional = [
            None if j % 3 == 0 else _OPTIONALS[rng.randrange(len(_OPTIONALS))] for j in range(256)
        ]
        # 4096-entry pools, indexed with the low 12 bits of a random uint16.
        self.latency = [round(rng.expovariate(1 / 40.0) + 0.1, 1) for _ in range(4096)]
        self.bytes_in = [int(rng.expovariate(1 / 600.0)) for _ in range(4096)]
        self.bytes_out = [int(rng.expovariate(1 / 5000.0)) for _ in range(4096)]
        self.ratio = [round(rng.random(), 3) for _ in range(4096)]
        self.score = [round(rng.uniform(-10.0, 100.0), 2) for _ in range(4096)]
        self.session = [f"{rng.getrandbits(32):08x}" for _ in range(4096)]
        # 65536-entry pool, indexed with a whole random uint16.
        self.trace = [f"{rng.getrandbits(64):016x}" for _ in range(65536)]


def _u16(rng: random.Random, count: int) -> array:
    """``count`` random uint16 values, independent of the platform's byte order."""
    a = array("H", rng.randbytes(2 * count))
    if sys.byteorder == "big":
        a.byteswap()
    return a


def _iso(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sec))


def iter_records(n: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Yield the ``n`` records for ``seed``, as dicts with keys in ``FIELDS`` order."""
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)
    p = _Pools(rng)
    shift = _RECORDS_PER_SECOND_SHIFT
    specials = SPECIAL_MESSAGES
    nspecial = len(specials)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        count = stop - start
        idx = range(start, stop)

        first_sec = start >> shift
        secs = [_iso(_BASE_TIME + s) for s in range(first_sec, ((stop - 1) >> shift) + 1)]
        c_time = [_BASE_TIME + (i >> shift) for i in idx]
        c_ts = [secs[(i >> shift) - first_sec] for i in idx]

        def col8(pool: list[Any], count: int = count) -> list[Any]:
            return [pool[b] for b in rng.randbytes(count)]

        def col12(pool: list[Any], count: int = count) -> list[Any]:
            return [pool[v & 4095] for v in _u16(rng, count)]

        c_host = col8(p.host)
        c_service = col8(p.service)
        c_level = col8(p.level)
        c_region = col8(p.region)
        c_method = col8(p.method)
        c_path = col8(p.path)
        c_status = col8(p.status)
        c_latency = col12(p.latency)
        c_bytes_in = col12(p.bytes_in)
        c_bytes_out = col12(p.bytes_out)
        c_user = [10_000 + v for v in _u16(rng, count)]
        c_session = col12(p.session)
        c_ratio = col12(p.ratio)
        c_score = col12(p.score)
        c_tag = col8(p.tag)
        c_message = col8(p.message)
        trace = p.trace
        c_trace = [trace[v] for v in _u16(rng, count)]
        c_optional = col8(p.optional)

        first_special = -(-start // SPECIAL_EVERY) * SPECIAL_EVERY
        for i in range(first_special, stop, SPECIAL_EVERY):
            c_message[i - start] = specials[(i // SPECIAL_EVERY) % nspecial]

        for (
            t,
            ts,
            host,
            service,
            level,
            region,
            method,
            path,
            status,
            latency,
            bytes_in,
            bytes_out,
            user,
            session,
            ratio,
            score,
            tag,
            message,
            trace_id,
            optional,
        ) in zip(
            c_time,
            c_ts,
            c_host,
            c_service,
            c_level,
            c_region,
            c_method,
            c_path,
            c_status,
            c_latency,
            c_bytes_in,
            c_bytes_out,
            c_user,
            c_session,
            c_ratio,
            c_score,
            c_tag,
            c_message,
            c_trace,
            c_optional,
            strict=True,
        ):
            yield {
                "time": t,
                "ts": ts,
                "host": host,
                "service": service,
                "level": level,
                "region": region,
                "method": method,
                "path": path,
                "status": status,
                "latency_ms": latency,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
                "user_id": user,
                "session": session,
                "ratio": ratio,
                "score": score,
                "tag": tag,
                "message": message,
                "trace_id": trace_id,
                "optional": optional,
            }


def shape_types(shape: str = "default") -> dict[str, str]:
    """The columns of a shape's records, in their order, with their DuckDB types."""
    if shape == "default":
        return COLUMN_TYPES
    from bench import gen_shapes  # it imports this module

    return {"small": gen_shapes.SMALL_TYPES, "large": gen_shapes.LARGE_TYPES}[shape]


def iter_shape(shape: str, n: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """The ``n`` records of ``shape`` for ``seed``."""
    if shape == "default":
        return iter_records(n, seed)
    from bench import gen_shapes

    if n < 0:
        raise ValueError("n must be >= 0")
    return {"small": gen_shapes.iter_small, "large": gen_shapes.iter_large}[shape](n, seed)


def generate(path: str | Path, n: int, seed: int = 1, shape: str = "default") -> int:
    """Write ``n`` NDJSON records of ``shape`` for ``seed`` to ``path``; return the bytes
    written."""
    dumps = orjson.dumps
    nl = orjson.OPT_APPEND_NEWLINE
    records = iter_shape(shape, n, seed)
    written = 0
    with open(path, "wb") as out:
        remaining = n
        while remaining > 0:
            block = min(_WRITE_BLOCK, remaining)
            buf = b"".join([dumps(rec, option=nl) for rec in islice(records, block)])
            out.write(buf)
            written += len(buf)
            remaining -= block
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gen", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="output NDJSON file")
    ap.add_argument("n", type=int, help="number of records")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shape", choices=SHAPES, default="default")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    nbytes = generate(args.out, args.n, args.seed, args.shape)
    dt = time.perf_counter() - t0
    summary = {
        "records": args.n,
        "bytes": nbytes,
        "seconds": round(dt, 3),
        "records_per_s": round(args.n / dt) if dt > 0 else None,
        "mb_per_s": round(nbytes / dt / 1e6, 1) if dt > 0 else None,
        "avg_record_bytes": round(nbytes / args.n, 1) if args.n else None,
    }
    print(orjson.dumps(summary).decode(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
