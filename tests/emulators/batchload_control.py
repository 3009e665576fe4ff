"""Control API of the batch-load emulator: plain JSON under /_emulator/, no auth.

GET  /_emulator/health                          {"ok": true}
POST /_emulator/reset                           drop all state, faults and config changes
GET|POST /_emulator/config                      task_delay, stop_after_files,
                                                max_active_tasks, succeed_with_failures,
                                                hold_tasks,
                                                job_delay,
                                                max_assets_per_job, max_assets_per_revision,
                                                max_active_jobs, hold_jobs_until_refused
GET|POST /_emulator/faults                      {"service": "timestream-write"|"dataexchange"
                                                 |"all", "throttle_rate", "internal_rate",
                                                 "seed", "operations": [...] | null,
                                                 "script": [{"operation", "error", "count",
                                                 "after"}]}  (POST replaces)
GET  /_emulator/calls                           {service: {operation: count}}
POST /_emulator/timestream/tables               {"database", "table"}
GET  /_emulator/timestream/tables               [[database, table], ...]
GET  /_emulator/timestream/tasks                task descriptions + ClientToken, ReportUri
GET  /_emulator/timestream/client-tokens        {token: CreateBatchLoadTask requests}
GET  /_emulator/timestream/{db}/{table}         ingested rows (typed JSON values)
POST /_emulator/dataexchange/data-sets          {"id"?: str, "name"?: str} -> {"id"}
GET  /_emulator/dataexchange/data-sets          data sets
GET  /_emulator/dataexchange/data-sets/{ds}/revisions
GET  /_emulator/dataexchange/data-sets/{ds}/revisions/{rev}/assets
GET  /_emulator/dataexchange/jobs
DELETE /_emulator/dataexchange/jobs/{job}       forget a job (GetJob answers 404, as for a
                                                job AWS no longer knows); it never finishes
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .batchload_common import Faults

if TYPE_CHECKING:
    from .batchload import Emulator

TS_KEYS = ("task_delay", "stop_after_files", "max_active_tasks", "succeed_with_failures",
           "hold_tasks")
DX_KEYS = ("job_delay", "max_assets_per_job", "max_assets_per_revision",
           "max_active_jobs", "hold_jobs_until_refused")
DATA_SET_ID = re.compile(r"[a-zA-Z0-9]{30,40}")
SERVICES = ("timestream-write", "dataexchange")


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not (await request.read()).strip():
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}',
                                 content_type="application/json")
    return data


def control_routes(emu: Emulator) -> list[web.RouteDef]:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "address": emu.address})

    async def reset(request: web.Request) -> web.Response:
        emu.reset()
        return web.json_response({"ok": True})

    def config_json() -> dict[str, Any]:
        return {**{k: getattr(emu.ts.config, k) for k in TS_KEYS},
                **{k: getattr(emu.dx.config, k) for k in DX_KEYS}}

    async def get_config(request: web.Request) -> web.Response:
        return web.json_response(config_json())

    async def set_config(request: web.Request) -> web.Response:
        data = await _body(request)
        unknown = data.keys() - set(TS_KEYS) - set(DX_KEYS)
        if unknown:
            return _bad(f"unknown config keys: {sorted(unknown)}")
        for key, value in data.items():
            setattr(emu.ts.config if key in TS_KEYS else emu.dx.config, key, value)
        return web.json_response(config_json())

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response({s: emu.faults[s].to_json() for s in SERVICES})

    async def set_faults(request: web.Request) -> web.Response:
        data = await _body(request)
        service = data.pop("service", "all")
        targets = SERVICES if service == "all" else (service,)
        if any(t not in SERVICES for t in targets):
            return _bad(f"service must be one of {SERVICES} or 'all'")
        try:
            for target in targets:
                emu.faults[target] = Faults.from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            return _bad(f"bad faults: {exc!r}")
        return await get_faults(request)

    async def calls(request: web.Request) -> web.Response:
        return web.json_response({s: dict(c) for s, c in emu.calls.items()})

    async def add_table(request: web.Request) -> web.Response:
        data = await _body(request)
        if not data.get("database") or not data.get("table"):
            return _bad("database and table are required")
        emu.ts.register_table(str(data["database"]), str(data["table"]))
        return web.json_response({"ok": True}, status=201)

    async def list_tables(request: web.Request) -> web.Response:
        return web.json_response([list(k) for k in emu.ts.tables])

    async def tasks(request: web.Request) -> web.Response:
        return web.json_response(emu.ts.control_tasks())

    async def tokens(request: web.Request) -> web.Response:
        return web.json_response(dict(emu.ts.token_calls))

    async def rows(request: web.Request) -> web.Response:
        data = emu.ts.rows(request.match_info["db"], request.match_info["table"])
        return _bad("table not registered", 404) if data is None else web.json_response(data)

    async def add_data_set(request: web.Request) -> web.Response:
        data = await _body(request)
        ds_id = data.get("id")
        if ds_id is not None and not DATA_SET_ID.fullmatch(str(ds_id)):
            return _bad("id must match [a-zA-Z0-9]{30,40}")
        return web.json_response({"id": emu.dx.register_data_set(ds_id, data.get("name"))},
                                 status=201)

    async def list_data_sets(request: web.Request) -> web.Response:
        return web.json_response(list(emu.dx.data_sets.values()))

    async def revisions(request: web.Request) -> web.Response:
        data = emu.dx.control_revisions(request.match_info["ds"])
        return _bad("data set not found", 404) if data is None else web.json_response(data)

    async def assets(request: web.Request) -> web.Response:
        data = emu.dx.control_assets(request.match_info["ds"], request.match_info["rev"])
        return _bad("revision not found", 404) if data is None else web.json_response(data)

    async def jobs(request: web.Request) -> web.Response:
        return web.json_response(emu.dx.control_jobs())

    async def forget_job(request: web.Request) -> web.Response:
        gone = emu.dx.jobs.pop(request.match_info["job"], None)
        return _bad("job not found", 404) if gone is None else web.json_response({"ok": True})

    base = "/_emulator"
    return [
        web.get(f"{base}/health", health),
        web.post(f"{base}/reset", reset),
        web.get(f"{base}/config", get_config),
        web.post(f"{base}/config", set_config),
        web.get(f"{base}/faults", get_faults),
        web.post(f"{base}/faults", set_faults),
        web.get(f"{base}/calls", calls),
        web.post(f"{base}/timestream/tables", add_table),
        web.get(f"{base}/timestream/tables", list_tables),
        web.get(f"{base}/timestream/tasks", tasks),
        web.get(f"{base}/timestream/client-tokens", tokens),
        web.get(f"{base}/timestream/{{db}}/{{table}}", rows),
        web.post(f"{base}/dataexchange/data-sets", add_data_set),
        web.get(f"{base}/dataexchange/data-sets", list_data_sets),
        web.get(f"{base}/dataexchange/data-sets/{{ds}}/revisions", revisions),
        web.get(f"{base}/dataexchange/data-sets/{{ds}}/revisions/{{rev}}/assets", assets),
        web.get(f"{base}/dataexchange/jobs", jobs),
        web.delete(f"{base}/dataexchange/jobs/{{job}}", forget_job),
    ]
