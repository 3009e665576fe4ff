"""Treasure Data ingestion emulator for integration tests.

Run it as its own process (from the repository root)::

    python -m tests.emulators.td --host 127.0.0.1 --port 0 --keys KEY1,KEY2 [--seed S]

It prints exactly one line ``READY <port>`` to stdout once it is listening.
Keys may also come from the environment variable ``TD_EMULATOR_KEYS`` (comma
separated) so they need not show up in a process listing.

Emulated APIs (see /work/shared/API_NOTES.md, "Treasure Data"):

* Postback API: ``POST /postback/v3/event/{database}/{table}``, one JSON object
  per request, ``Content-Type: application/json``. Auth (first match wins):
  ``X-TD-Write-Key`` header, ``Authorization: TD1 <key>`` header, then the
  URL-encoded ``td_write_key`` query parameter. Body cap 1,048,064 bytes -> 413.
  Success: 200 with body ``{}``.
* Data Ingestion API: ``POST /{database}/{table}``, ``Authorization: TD1 <key>``
  only, ``Content-Type: application/vnd.treasuredata.v1+json`` (anything else is
  answered **400**, not 415), body ``{"events": [...]}`` with 1..500 JSON objects.
  A request body over 5,000,000 bytes, or any event whose compact UTF-8 JSON
  re-serialization exceeds 1,000,000 bytes, gets 413. Success: 200 with
  ``{"written_batches": [{"success": true}, ...]}`` (one written per event).

Check order for both APIs (the first failing check answers):
forced status -> slow delay -> injected reset/500/429 -> body size (413) ->
auth (403) -> database/table names (400) -> Content-Type (400) -> body (400/413).
Error bodies are JSON ``{"error": "<message>"}``; the key is never echoed or logged.
The access log is disabled because request lines can carry ``td_write_key``.

Faults (fractions in [0, 1]; each request draws once per kind from its own
seeded ``random.Random``, so a sequential run is reproducible):

* ``error_500``: answer 500.
* ``throttle_429``: answer 429 with ``Retry-After: <retry_after>`` (integer seconds).
* ``slow``: sleep ``slow_seconds`` then carry on normally (combines with others).
* ``reset_before``: abort the connection (TCP RST) before reading the body; nothing stored.
* ``reset_after``: store the records of an accepted request, then abort with no
  response (a lost response: a retrying client creates duplicates).
* ``force_status``: answer every API request with this status (300..599), nothing stored;
  a 3xx carries ``Location: http://redirect.example<path>?td_write_key=<key>``.
* ``max_body``: a lower body limit than the API's (a gateway in front): 413 above it.
* ``echo_key``: answer every API request 400 (or ``force_status``), nothing stored, with
  a body that echoes the request's write key JSON-escaped as some servers do
  (``"1234\\/abc..."``): ``"json"`` echoes it whole, ``"cut"`` puts it across byte
  512 of the body (a client keeping 512 bytes keeps its first 12 escaped bytes).

When several of reset_before / error_500 / throttle_429 are drawn for one request,
the first in that order is applied and only applied faults are counted.

Control API (no auth):

* ``GET /_emulator/records[?api=&database=&table=]``: NDJSON, one
  ``{"api", "database", "table", "record"}`` object per line (``api`` is
  ``"postback"`` or ``"ingest"``), in acceptance order.
* ``GET /_emulator/stats``: JSON counters.
* ``GET /_emulator/faults``: the current fault config.
* ``POST /_emulator/faults``: JSON object that REPLACES the fault config (omitted
  fields take their defaults; an optional ``"seed"`` changes the seed). The fault
  dice are re-seeded, so the same config gives the same fault sequence.
* ``POST /_emulator/reset``: clear records and stats and re-seed the dice; the
  fault config is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiohttp import web

from streamer.core.json_dumps import dumps  # records deeper than orjson writes

POSTBACK_MAX_BODY = 1_048_064
INGEST_MAX_BODY = 5_000_000
INGEST_MAX_EVENT = 1_000_000
INGEST_MAX_EVENTS = 500
NAME_RE = re.compile(r"^[a-z0-9_]{3,255}$")
POSTBACK_CONTENT_TYPE = "application/json"
INGEST_CONTENT_TYPE = "application/vnd.treasuredata.v1+json"
JSON_CONTENT_TYPE = "application/json"
NDJSON_CONTENT_TYPE = "application/x-ndjson"
FAULT_KINDS = ("reset_before", "error_500", "throttle_429", "slow", "reset_after")
ALL_FAULT_COUNTERS = (*FAULT_KINDS, "forced_status")
AUTH_METHODS = ("header", "td1", "query", "none")
RECORDS_CHUNK = 1000


class ConfigError(ValueError):
    """A fault configuration value is invalid."""


@dataclasses.dataclass(frozen=True)
class FaultConfig:
    """Fault-injection settings; fractions are probabilities per request."""

    error_500: float = 0.0
    throttle_429: float = 0.0
    retry_after: int = 1
    slow: float = 0.0
    slow_seconds: float = 1.0
    reset_before: float = 0.0
    reset_after: float = 0.0
    force_status: int | None = None
    echo_key: str | None = None
    max_body: int | None = None  # a gateway's lower body limit: 413 above it

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build a validated config; unknown keys or bad values raise ConfigError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown fault settings: {', '.join(unknown)}")
        config = cls(**data)
        config.validate()
        return config

    def validate(self) -> None:
        for kind in FAULT_KINDS:
            value = getattr(self, kind)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{kind} must be a number in [0, 1]")
        if not isinstance(self.retry_after, int) or isinstance(self.retry_after, bool):
            raise ConfigError("retry_after must be an integer number of seconds")
        if self.retry_after < 0:
            raise ConfigError("retry_after must be >= 0")
        if not _is_number(self.slow_seconds) or self.slow_seconds < 0:
            raise ConfigError("slow_seconds must be a number >= 0")
        status = self.force_status
        if status is not None and (
            not isinstance(status, int) or isinstance(status, bool) or not 300 <= status <= 599
        ):
            raise ConfigError("force_status must be null or an integer in [300, 599]")
        if self.echo_key not in (None, "json", "cut"):
            raise ConfigError('echo_key must be null, "json" or "cut"')
        if self.max_body is not None and (not isinstance(self.max_body, int)
                                          or self.max_body < 1):
            raise ConfigError("max_body must be null or a positive integer")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class FaultRoll:
    """Which fault kinds were drawn for one request."""

    reset_before: bool
    error_500: bool
    throttle_429: bool
    slow: bool
    reset_after: bool


class FaultDice:
    """One seeded random stream per fault kind, so kinds are independent."""

    def __init__(self, seed: int) -> None:
        self._streams = {kind: random.Random(f"{seed}:{kind}") for kind in FAULT_KINDS}

    def roll(self, config: FaultConfig) -> FaultRoll:
        drawn = {kind: self._streams[kind].random() < getattr(config, kind) for kind in FAULT_KINDS}
        return FaultRoll(**drawn)


@dataclasses.dataclass
class Stats:
    """Counters reported by GET /_emulator/stats."""

    requests_total: int = 0
    connections_aborted: int = 0
    records_accepted: int = 0
    requests_by_status: Counter[int] = dataclasses.field(default_factory=Counter)
    faults: Counter[str] = dataclasses.field(default_factory=Counter)
    auth_methods: Counter[str] = dataclasses.field(default_factory=Counter)
    records_by_api: Counter[str] = dataclasses.field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "requests_by_status": {
                str(code): n for code, n in sorted(self.requests_by_status.items())
            },
            "connections_aborted": self.connections_aborted,
            "faults": {kind: self.faults[kind] for kind in ALL_FAULT_COUNTERS},
            "records_accepted": self.records_accepted,
            "records_by_api": {api: self.records_by_api[api] for api in ("postback", "ingest")},
            "auth_methods": {method: self.auth_methods[method] for method in AUTH_METHODS},
        }


@dataclasses.dataclass(frozen=True)
class StoredRecord:
    api: str
    database: str
    table: str
    record: dict[str, Any]

    def to_json(self) -> bytes:
        return dumps(
            {"api": self.api, "database": self.database, "table": self.table, "record": self.record}
        )


class EmulatorState:
    """All mutable state of one emulator; lives on the aiohttp app."""

    def __init__(self, keys: Iterable[str], faults: FaultConfig, seed: int) -> None:
        self.keys = frozenset(keys)
        self.faults = faults
        self.seed = seed
        self.dice = FaultDice(seed)
        self.records: list[StoredRecord] = []
        self.stats = Stats()

    def set_faults(self, faults: FaultConfig, seed: int | None = None) -> None:
        self.faults = faults
        if seed is not None:
            self.seed = seed
        self.dice = FaultDice(self.seed)

    def reset(self) -> None:
        self.records = []
        self.stats = Stats()
        self.dice = FaultDice(self.seed)

    def is_valid_key(self, key: str | None) -> bool:
        return key is not None and key in self.keys

    def store(self, api: str, database: str, table: str, records: list[dict[str, Any]]) -> None:
        self.records.extend(StoredRecord(api, database, table, r) for r in records)
        self.stats.records_accepted += len(records)
        self.stats.records_by_api[api] += len(records)


STATE_KEY = web.AppKey("td_emulator_state", EmulatorState)


class Rejection(Exception):
    """A request fails validation and is answered with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class Accepted:
    """The outcome of a valid request: records to store and the 200 body."""

    database: str
    table: str
    records: list[dict[str, Any]]
    body: bytes


# --------------------------------------------------------------------------- helpers


def json_response(
    state: EmulatorState, status: int, body: object, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Build an API response and count its status."""
    state.stats.requests_by_status[status] += 1
    return web.Response(
        status=status, body=orjson.dumps(body), content_type=JSON_CONTENT_TYPE, headers=headers
    )


def error_response(
    state: EmulatorState, status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_response(state, status, {"error": message}, headers)


def abort_connection(state: EmulatorState, request: web.Request) -> web.Response:
    """Reset the TCP connection (RST, no response). The returned object is never sent."""
    state.stats.connections_aborted += 1
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=499)


def td1_key(authorization: str | None) -> str | None:
    """The key of an ``Authorization: TD1 <key>`` header, else None."""
    if not authorization:
        return None
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.upper() != "TD1":
        return None
    return key.strip() or None


def postback_credentials(request: web.Request) -> tuple[str, str | None]:
    """(auth method, key) for the postback API: headers win over the query."""
    header_key = request.headers.get("X-TD-Write-Key")
    if header_key:
        return "header", header_key
    key = td1_key(request.headers.get("Authorization"))
    if key:
        return "td1", key
    query_key = request.query.get("td_write_key")
    if query_key:
        return "query", query_key
    return "none", None


def ingest_credentials(request: web.Request) -> tuple[str, str | None]:
    """(auth method, key) for the Data Ingestion API: TD1 header only."""
    key = td1_key(request.headers.get("Authorization"))
    return ("td1", key) if key else ("none", None)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole request body, or Rejection(413) once it exceeds `limit` bytes."""
    too_large = Rejection(413, f"request body exceeds {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def check_auth(state: EmulatorState, method: str, key: str | None) -> None:
    state.stats.auth_methods[method] += 1
    if not state.is_valid_key(key):
        raise Rejection(403, "forbidden: missing or invalid write key")


def check_names(request: web.Request) -> tuple[str, str]:
    database = request.match_info["database"]
    table = request.match_info["table"]
    for kind, name in (("database", database), ("table", table)):
        if not NAME_RE.fullmatch(name):
            raise Rejection(400, f"invalid {kind} name: must match {NAME_RE.pattern}")
    return database, table


def check_content_type(request: web.Request, expected: str) -> None:
    if request.content_type != expected:
        raise Rejection(400, f"Content-Type must be {expected}")


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Rejection(400, "body is not valid UTF-8 JSON") from None


# --------------------------------------------------------------------------- API logic


async def validate_postback(request: web.Request, state: EmulatorState) -> Accepted:
    body = await read_body(request, min(POSTBACK_MAX_BODY,
                                        state.faults.max_body or POSTBACK_MAX_BODY))
    check_auth(state, *postback_credentials(request))
    database, table = check_names(request)
    check_content_type(request, POSTBACK_CONTENT_TYPE)
    record = parse_json(body)
    if not isinstance(record, dict):
        raise Rejection(400, "body must be one JSON object")
    return Accepted(database, table, [record], b"{}")


async def validate_ingest(request: web.Request, state: EmulatorState) -> Accepted:
    body = await read_body(request, min(INGEST_MAX_BODY,
                                        state.faults.max_body or INGEST_MAX_BODY))
    check_auth(state, *ingest_credentials(request))
    database, table = check_names(request)
    check_content_type(request, INGEST_CONTENT_TYPE)
    events = ingest_events(parse_json(body))
    written_batches = [{"success": True}] * len(events)
    return Accepted(database, table, events, orjson.dumps({"written_batches": written_batches}))


def ingest_events(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise Rejection(400, 'body must be {"events": [...]}')
    events: list[Any] = payload["events"]
    if not 1 <= len(events) <= INGEST_MAX_EVENTS:
        raise Rejection(400, f"events must hold 1 to {INGEST_MAX_EVENTS} records")
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise Rejection(400, f"event {index} is not a JSON object")
        if len(dumps(event)) > INGEST_MAX_EVENT:
            raise Rejection(413, f"event {index} exceeds {INGEST_MAX_EVENT} bytes")
    return events


async def handle_api(request: web.Request, api: str) -> web.StreamResponse:
    """Shared flow: faults, validation, storage, then the (possibly lost) answer."""
    state = request.app[STATE_KEY]
    state.stats.requests_total += 1
    config = state.faults
    if config.echo_key is not None:
        state.stats.faults["forced_status"] += 1
        return key_echo_response(state, request, config)
    if config.force_status is not None:
        state.stats.faults["forced_status"] += 1
        return error_response(
            state, config.force_status, "forced status", forced_headers(request, config)
        )
    roll = state.dice.roll(config)
    early = await apply_early_faults(request, state, config, roll)
    if early is not None:
        return early
    validate = validate_postback if api == "postback" else validate_ingest
    try:
        accepted = await validate(request, state)
    except Rejection as exc:
        return error_response(state, exc.status, exc.message)
    state.store(api, accepted.database, accepted.table, accepted.records)
    if roll.reset_after:
        state.stats.faults["reset_after"] += 1
        return abort_connection(state, request)
    state.stats.requests_by_status[200] += 1
    return web.Response(status=200, body=accepted.body, content_type=JSON_CONTENT_TYPE)


def forced_headers(request: web.Request, config: FaultConfig) -> dict[str, str] | None:
    if config.force_status == 429:
        return {"Retry-After": str(config.retry_after)}
    if config.force_status is not None and config.force_status < 400:
        key = postback_credentials(request)[1] or ""
        query = urllib.parse.urlencode({"td_write_key": key})
        return {"Location": f"http://redirect.example{request.path}?{query}"}
    return None


def key_echo_response(state: EmulatorState, request: web.Request,
                      config: FaultConfig) -> web.Response:
    """A 400 (or the forced status) whose body echoes the key JSON-escaped, '/' as '\\/'."""
    key = postback_credentials(request)[1] or ""
    escaped = json.dumps(key)[1:-1].replace("/", "\\/")
    head = '{"error":"invalid write key: '
    if config.echo_key == "cut":
        head += "x" * max(0, 500 - len(head))  # the key's escaped form starts at byte 500
    body = f'{head}{escaped}","hint":"check the key"}}'
    status = config.force_status or 400
    state.stats.requests_by_status[status] += 1
    return web.Response(status=status, body=body.encode(), content_type=JSON_CONTENT_TYPE)


async def apply_early_faults(
    request: web.Request, state: EmulatorState, config: FaultConfig, roll: FaultRoll
) -> web.StreamResponse | None:
    """Apply slow / reset_before / 500 / 429; None when the request goes on normally."""
    if roll.slow:
        state.stats.faults["slow"] += 1
        await asyncio.sleep(config.slow_seconds)
    if roll.reset_before:
        state.stats.faults["reset_before"] += 1
        return abort_connection(state, request)
    if roll.error_500:
        state.stats.faults["error_500"] += 1
        return error_response(state, 500, "internal server error (injected)")
    if roll.throttle_429:
        state.stats.faults["throttle_429"] += 1
        headers = {"Retry-After": str(config.retry_after)}
        return error_response(state, 429, "too many requests (injected)", headers)
    return None


async def postback_handler(request: web.Request) -> web.StreamResponse:
    return await handle_api(request, "postback")


async def ingest_handler(request: web.Request) -> web.StreamResponse:
    return await handle_api(request, "ingest")


# --------------------------------------------------------------------------- control API


def control_json(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type=JSON_CONTENT_TYPE)


async def records_handler(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    filters = {k: request.query[k] for k in ("api", "database", "table") if k in request.query}
    records = [r for r in state.records if all(getattr(r, k) == v for k, v in filters.items())]
    response = web.StreamResponse(headers={"Content-Type": NDJSON_CONTENT_TYPE})
    await response.prepare(request)
    for start in range(0, len(records), RECORDS_CHUNK):
        chunk = records[start : start + RECORDS_CHUNK]
        await response.write(b"".join(r.to_json() + b"\n" for r in chunk))
    await response.write_eof()
    return response


async def stats_handler(request: web.Request) -> web.Response:
    return control_json(request.app[STATE_KEY].stats.to_dict())


async def get_faults_handler(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return control_json({**state.faults.to_dict(), "seed": state.seed})


async def set_faults_handler(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        data = orjson.loads(await request.read() or b"{}")
        if not isinstance(data, dict):
            raise ConfigError("body must be a JSON object")
        seed = data.pop("seed", None)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ConfigError("seed must be an integer")
        config = FaultConfig.from_mapping(data)
    except (orjson.JSONDecodeError, ConfigError, TypeError) as exc:
        return control_json({"error": str(exc)}, status=400)
    state.set_faults(config, seed)
    return control_json({**state.faults.to_dict(), "seed": state.seed})


async def reset_handler(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return control_json({})


# --------------------------------------------------------------------------- app & CLI


def create_app(
    keys: Iterable[str], faults: FaultConfig | None = None, seed: int = 0
) -> web.Application:
    """The emulator application; control routes are registered before `/{database}/{table}`."""
    app = web.Application()
    app[STATE_KEY] = EmulatorState(keys, faults or FaultConfig(), seed)
    app.router.add_get("/_emulator/records", records_handler)
    app.router.add_get("/_emulator/stats", stats_handler)
    app.router.add_get("/_emulator/faults", get_faults_handler)
    app.router.add_post("/_emulator/faults", set_faults_handler)
    app.router.add_post("/_emulator/reset", reset_handler)
    app.router.add_post("/postback/v3/event/{database}/{table}", postback_handler)
    app.router.add_post("/{database}/{table}", ingest_handler)
    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.emulators.td",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--keys",
        default=os.environ.get("TD_EMULATOR_KEYS", ""),
        help="comma-separated write keys (default: $TD_EMULATOR_KEYS)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--error-500", type=float, default=0.0)
    parser.add_argument("--throttle-429", type=float, default=0.0)
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--slow-seconds", type=float, default=1.0)
    parser.add_argument("--reset-before", type=float, default=0.0)
    parser.add_argument("--reset-after", type=float, default=0.0)
    parser.add_argument("--force-status", type=int, default=None)
    parser.add_argument("--echo-key", choices=("json", "cut"), default=None)
    parser.add_argument("--max-body", type=int, default=None)
    args = parser.parse_args(argv)
    if not [k for k in args.keys.split(",") if k]:
        parser.error("at least one key is required (--keys or TD_EMULATOR_KEYS)")
    return args


def faults_from_args(args: argparse.Namespace) -> FaultConfig:
    names = [f.name for f in dataclasses.fields(FaultConfig)]
    return FaultConfig.from_mapping({name: getattr(args, name) for name in names})


async def serve(args: argparse.Namespace, faults: FaultConfig) -> None:
    keys = [k for k in args.keys.split(",") if k]
    app = create_app(keys, faults, args.seed)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        faults = faults_from_args(args)
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(args, faults))


if __name__ == "__main__":
    main()
