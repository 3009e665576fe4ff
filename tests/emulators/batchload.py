"""Emulator for Timestream batch load + Data Exchange import jobs, on one aiohttp server.

Run: python -m tests.emulators.batchload --port 0 --s3-endpoint http://127.0.0.1:PORT
It prints "READY <port>" once listening on 127.0.0.1.

- Timestream Write: AWS JSON 1.0, POST / with X-Amz-Target: Timestream_20181101.<Op>.
- Data Exchange: REST-JSON, routes taken from botocore's service model.
- Each request must carry a SigV4 Authorization header scoped to the right service and
  region (the signature itself is not checked), and is validated against botocore's
  model (types, required, unknown members, min/max, enums, patterns) before it runs.
  Responses are checked against the output shape too (a mismatch answers 500).
- Control API (plain JSON, no auth) under /_emulator/, see `control_routes`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

from .batchload_common import (
    ApiError,
    Faults,
    ModelValidator,
    S3Access,
    check_sigv4,
    error_status,
    new_hex_id,
)
from .batchload_control import control_routes
from .dataexchange import DataExchangeConfig, DataExchangeService
from .timestream import TimestreamConfig, TimestreamService

LOG = logging.getLogger("batchload-emulator")
TS, DX = "timestream-write", "dataexchange"
TS_TARGET_PREFIX = "Timestream_20181101"
JSON10 = "application/x-amz-json-1.0"
TS_OPS = ("CreateBatchLoadTask", "DescribeBatchLoadTask", "ResumeBatchLoadTask",
          "ListBatchLoadTasks", "DescribeEndpoints", "DescribeTable")
DX_OPS = ("CreateRevision", "GetRevision", "UpdateRevision", "ListRevisionAssets",
          "CreateJob", "StartJob", "GetJob", "CancelJob", "GetDataSet")
AUTH_ERRORS = ("MissingAuthenticationTokenException", "IncompleteSignatureException",
               "InvalidSignatureException")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Emulator:
    def __init__(self, s3_endpoint: str, region: str, address: str,
                 ts_config: TimestreamConfig, dx_config: DataExchangeConfig) -> None:
        self.region, self.address = region, address
        self.default_ts, self.default_dx = ts_config, dx_config
        self.validators = {TS: ModelValidator(TS), DX: ModelValidator(DX)}
        self.s3 = S3Access(s3_endpoint, region)
        self.background: set[asyncio.Task[None]] = set()
        self.reset()

    def reset(self) -> None:
        for task in self.background:
            task.cancel()
        self.background.clear()
        ts_cfg = TimestreamConfig(**vars(self.default_ts))
        dx_cfg = DataExchangeConfig(**vars(self.default_dx))
        self.ts = TimestreamService(self.s3, self.validators[TS], ts_cfg, self.spawn,
                                    self.address)
        self.dx = DataExchangeService(self.s3, dx_cfg, self.spawn, self.region)
        self.faults = {TS: Faults(), DX: Faults()}
        self.calls: dict[str, Counter[str]] = {TS: Counter(), DX: Counter()}

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            LOG.error("background job failed", exc_info=task.exception())

    # ---- AWS JSON 1.0 (Timestream Write) -------------------------------------------
    def _json10_error(self, err: ApiError) -> web.Response:
        status = 403 if err.code in AUTH_ERRORS else error_status(
            self.validators[TS].model, err.code)
        body = {"__type": err.code, "message": err.message, **err.fields}
        return web.Response(status=status, body=json.dumps(body).encode(),
                            content_type=JSON10, headers={"x-amzn-RequestId": new_hex_id()})

    async def handle_json10(self, request: web.Request) -> web.Response:
        prefix, _, op = request.headers.get("X-Amz-Target", "").partition(".")
        if prefix != TS_TARGET_PREFIX or op not in TS_OPS:
            return self._json10_error(ApiError("UnknownOperationException",
                                               f"Unknown operation {op or '(none)'}"))
        self.calls[TS][op] += 1
        try:
            if request.content_type != JSON10:
                raise ApiError("SerializationException", f"Content-Type must be {JSON10}")
            auth = check_sigv4(request.headers, "timestream", self.region)
            if auth is not None:
                raise auth
            params = _json_object(await request.read())
            token = params.get("ClientToken")
            if op == "CreateBatchLoadTask" and isinstance(token, str):
                self.ts.token_calls[token] += 1
            result = await self._run_op(TS, op, params, self.ts.call)
        except ApiError as err:
            return self._json10_error(err)
        return web.Response(body=json.dumps(result).encode(), content_type=JSON10,
                            headers={"x-amzn-RequestId": new_hex_id()})

    async def _run_op(self, service: str, op: str, params: dict[str, Any],
                      call: Callable[[str, dict[str, Any]],
                                     Coroutine[Any, Any, dict[str, Any]]]) -> dict[str, Any]:
        fault = self.faults[service].pick(op)
        if fault is not None and not fault[1]:
            raise ApiError(fault[0], "Injected fault")
        problems = self.validators[service].input_errors(op, params)
        if problems:
            raise ApiError("ValidationException", problems)
        result = await call(op, params)
        if fault is not None:
            raise ApiError(fault[0], "Injected fault (after the operation ran)")
        problems = self.validators[service].output_errors(op, result)
        if problems:
            LOG.error("emulator produced invalid %s output: %s", op, problems)
            raise ApiError("InternalServerException", f"Emulator bug, bad output: {problems}")
        return result

    # ---- REST-JSON (Data Exchange) -------------------------------------------------
    def _rest_error(self, err: ApiError) -> web.Response:
        status = 403 if err.code in AUTH_ERRORS else error_status(
            self.validators[DX].model, err.code)
        body = {"Message": err.message, **err.fields}
        return web.Response(status=status, body=json.dumps(body).encode(),
                            content_type="application/json",
                            headers={"x-amzn-ErrorType": err.code,
                                     "x-amzn-RequestId": new_hex_id()})

    def rest_handler(self, op: str) -> Handler:
        op_model = self.validators[DX].operation(op)
        success = int(op_model.http.get("responseCode", 200))

        async def handler(request: web.Request) -> web.Response:
            self.calls[DX][op] += 1
            try:
                auth = check_sigv4(request.headers, "dataexchange", self.region)
                if auth is not None:
                    raise auth
                params = _rest_params(op_model, request, _json_object(await request.read()))
                result = await self._run_op(DX, op, params, self.dx.call)
            except ApiError as err:
                return self._rest_error(err)
            headers = {"x-amzn-RequestId": new_hex_id()}
            if success == 204:
                return web.Response(status=204, headers=headers)
            return web.Response(status=success, body=json.dumps(result).encode(),
                                content_type="application/json", headers=headers)

        return handler

    async def handle_unknown(self, request: web.Request) -> web.Response:
        return self._rest_error(ApiError(
            "UnknownOperationException", f"No operation for {request.method} {request.path}"))

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(control_routes(self))
        app.router.add_post("/", self.handle_json10)
        for op in DX_OPS:
            http = self.validators[DX].operation(op).http
            app.router.add_route(http["method"], http["requestUri"], self.rest_handler(op))
        app.router.add_route("*", "/{tail:.*}", self.handle_unknown)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _shutdown(self, app: web.Application) -> None:
        for task in list(self.background):
            task.cancel()


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ApiError("SerializationException", f"Body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError("SerializationException", "Body must be a JSON object")
    return value


def _rest_params(op_model: Any, request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    """Input parameters from URI, query string, headers and body, per the model."""
    shape = op_model.input_shape
    params: dict[str, Any] = {}
    located: set[str] = set()
    for name, member in (shape.members.items() if shape is not None else []):
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location is None:
            continue
        located.add(name)
        if location == "uri":
            value: Any = request.match_info.get(wire)
        elif location == "querystring":
            value = request.query.get(wire)
            if value is not None and member.type_name in ("integer", "long"):
                with contextlib.suppress(ValueError):
                    value = int(value)
            elif value is not None and member.type_name == "boolean":
                value = {"true": True, "false": False}.get(value, value)
        else:
            value = request.headers.get(wire)
        if value is not None:
            params[name] = value
    params.update({k: v for k, v in body.items() if k not in located})
    return params


async def serve(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    emulator = Emulator(args.s3_endpoint, args.region, f"127.0.0.1:{port}",
                        TimestreamConfig(task_delay=args.task_delay),
                        DataExchangeConfig(job_delay=args.job_delay,
                                           max_assets_per_job=args.max_assets_per_job))
    runner = web.AppRunner(emulator.app(), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {port}", flush=True)
    parent = os.getppid()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        if os.getppid() != parent:  # parent died: do not linger as an orphan
            break
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--s3-endpoint", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--task-delay", type=float, default=0.2)
    parser.add_argument("--job-delay", type=float, default=0.2)
    parser.add_argument("--max-assets-per-job", type=int, default=100)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
