"""Self-tests of the Timestream batch-load / Data Exchange emulator and the moto fixtures.

Every call goes through real aiobotocore clients, so the wire format, error parsing
and endpoint handling are the ones the product will meet.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

from tests.fixtures.batchload import BatchLoadEmulator
from tests.fixtures.moto_s3 import MotoServer, TcpProxy
from tests.helpers import poll_until

pytestmark = pytest.mark.timeout(60)
DB = "streamer_db"
HEADER = "time,host,region,cpu,count,ok,note,seen\n"
NO_RETRY = {"total_max_attempts": 1, "mode": "standard"}


@contextlib.asynccontextmanager
async def aws(emu: BatchLoadEmulator, moto: MotoServer, **config: Any
              ) -> AsyncIterator[tuple[Any, Any, Any]]:
    """(timestream-write, dataexchange, s3) clients; `config` goes to AioConfig."""
    session = get_session()
    creds = {"region_name": "us-east-1", "aws_access_key_id": "testing",
             "aws_secret_access_key": "testing"}
    cfg = AioConfig(**config) if config else None
    async with contextlib.AsyncExitStack() as stack:
        ts = await stack.enter_async_context(session.create_client(
            "timestream-write", endpoint_url=emu.endpoint_url, config=cfg, **creds))
        dx = await stack.enter_async_context(session.create_client(
            "dataexchange", endpoint_url=emu.endpoint_url, config=cfg, **creds))
        s3 = await stack.enter_async_context(session.create_client(
            "s3", endpoint_url=moto.endpoint_url, **creds))
        yield ts, dx, s3


def load_request(bucket: str, prefix: str, table: str, **overrides: Any) -> dict[str, Any]:
    attrs = [("cpu", "DOUBLE"), ("count", "BIGINT"), ("ok", "BOOLEAN"), ("note", "VARCHAR")]
    mappings = [{"SourceColumn": c, "MeasureValueType": t} for c, t in attrs]
    mappings.append({"SourceColumn": "seen", "TargetMultiMeasureAttributeName": "seen_at",
                     "MeasureValueType": "TIMESTAMP"})
    request: dict[str, Any] = {
        "TargetDatabaseName": DB, "TargetTableName": table,
        "DataSourceConfiguration": {
            "DataSourceS3Configuration": {"BucketName": bucket, "ObjectKeyPrefix": prefix},
            "CsvConfiguration": {"ColumnSeparator": ",", "QuoteChar": '"',
                                 "NullValue": "NULL"},
            "DataFormat": "CSV"},
        "ReportConfiguration": {"ReportS3Configuration": {
            "BucketName": bucket, "ObjectKeyPrefix": "reports", "EncryptionOption": "SSE_S3"}},
        "DataModelConfiguration": {"DataModel": {
            "TimeColumn": "time", "TimeUnit": "MILLISECONDS",
            "DimensionMappings": [{"SourceColumn": "host", "DestinationColumn": "host"},
                                  {"SourceColumn": "region", "DestinationColumn": "region"}],
            "MultiMeasureMappings": {"TargetMultiMeasureName": "metrics",
                                     "MultiMeasureAttributeMappings": mappings}}},
        "ClientToken": uuid.uuid4().hex,
    }
    request.update(overrides)
    return request


async def stage(s3: Any, bucket: str, files: dict[str, bytes | str]) -> str:
    prefix = f"batches/{uuid.uuid4().hex[:12]}/"
    for name, body in files.items():
        data = body.encode() if isinstance(body, str) else body
        await s3.put_object(Bucket=bucket, Key=prefix + name, Body=data)
    return prefix


async def wait_task(ts: Any, task_id: str, states: tuple[str, ...] = ("SUCCEEDED", "FAILED"),
                    timeout: float = 10.0) -> dict[str, Any]:
    async def describe() -> dict[str, Any]:
        return (await ts.describe_batch_load_task(TaskId=task_id))["BatchLoadTaskDescription"]

    return await poll_until(describe, lambda desc: desc["TaskStatus"] in states, timeout)


async def wait_job(dx: Any, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
    return await poll_until(lambda: dx.get_job(JobId=job_id),
                            lambda job: job["State"] in ("COMPLETED", "ERROR", "CANCELLED",
                                                         "TIMED_OUT"), timeout)


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


async def test_batch_load_succeeds_with_typed_rows(
        batchload_emulator: BatchLoadEmulator, moto_s3: MotoServer, s3_bucket: str) -> None:
    emu, table = batchload_emulator, "cpu_a"
    emu.register_table(DB, table)
    files = {"a.csv": HEADER + '1700000000000,h1,eu,0.5,10,true,"hello, world",1700000000001\n'
                               "1700000001000,h2,eu,1.25,-3,FALSE,NULL,1700000000002\n",
             "b.csv": HEADER + "1700000002000,h1,us,2,9223372036854775807,true,plain,3\n"
                               '1700000003000,h3,,3.5,0,false,"say ""hi""",4\n'}
    async with aws(emu, moto_s3) as (ts, _, s3):
        prefix = await stage(s3, s3_bucket, files)
        task_id = (await ts.create_batch_load_task(
            **load_request(s3_bucket, prefix, table)))["TaskId"]
        first = (await ts.describe_batch_load_task(TaskId=task_id))["BatchLoadTaskDescription"]
        desc = await wait_task(ts, task_id)
        listed = await ts.list_batch_load_tasks()
        endpoints = await ts.describe_endpoints()
    assert first["TaskStatus"] == "CREATED"
    assert desc["TaskStatus"] == "SUCCEEDED" and "ErrorMessage" not in desc
    assert desc["ProgressReport"] == {
        "RecordsProcessed": 4, "RecordsIngested": 4, "ParseFailures": 0,
        "RecordIngestionFailures": 0, "FileFailures": 0,
        "BytesMetered": sum(len(v) for v in files.values())}
    assert [t["TaskId"] for t in listed["BatchLoadTasks"]] == [task_id]
    rows = {r["time_ns"] // 10**6: r for r in emu.rows(DB, table)}
    assert rows[1700000000000]["measures"] == {"cpu": 0.5, "count": 10, "ok": True,
                                               "note": "hello, world",
                                               "seen_at": 1700000000001 * 10**6}
    assert rows[1700000000000]["dimensions"] == {"host": "h1", "region": "eu"}
    assert rows[1700000000000]["measure_name"] == "metrics"
    assert rows[1700000001000]["measures"] == {"cpu": 1.25, "count": -3, "ok": False,
                                               "seen_at": 1700000000002 * 10**6}
    assert rows[1700000002000]["measures"]["count"] == 2**63 - 1
    assert rows[1700000003000]["dimensions"] == {"host": "h3"}
    assert rows[1700000003000]["measures"]["note"] == 'say "hi"'
    assert rows[1700000003000]["measure_types"]["cpu"] == "DOUBLE"
    # The client has an explicit endpoint_url: no endpoint discovery ever happened;
    # the one DescribeEndpoints call is the explicit one above, answered with our address.
    assert emu.calls()["timestream-write"]["DescribeEndpoints"] == 1
    assert endpoints["Endpoints"][0]["Address"] == emu.endpoint_url.removeprefix("http://")


async def test_explicit_endpoint_never_triggers_discovery(
        batchload_emulator: BatchLoadEmulator, moto_s3: MotoServer) -> None:
    async with aws(batchload_emulator, moto_s3) as (ts, _, _):
        for _ in range(3):
            with pytest.raises(ClientError) as exc:
                await ts.describe_batch_load_task(TaskId="NOSUCHTASK")
            assert code(exc) == "ResourceNotFoundException"
        await ts.list_batch_load_tasks()
    calls = batchload_emulator.calls()["timestream-write"]
    assert calls == {"DescribeBatchLoadTask": 3, "ListBatchLoadTasks": 1}


async def test_csv_options_pipe_quote_escape_trim(
        batchload_emulator: BatchLoadEmulator, moto_s3: MotoServer, s3_bucket: str) -> None:
    emu, table = batchload_emulator, "cpu_opts"
    emu.register_table(DB, table)
    body = ("time | host | region | cpu | count | ok | note | seen\n"
            "5 | h1 | - | 1.5 | 2 | true | 'it\\'s | here'| 7\n")
    csv_cfg = {"ColumnSeparator": "|", "QuoteChar": "'", "EscapeChar": "\\",
               "NullValue": "-", "TrimWhiteSpace": True}
    async with aws(emu, moto_s3) as (ts, _, s3):
        prefix = await stage(s3, s3_bucket, {"x.csv": body})
        req = load_request(s3_bucket, prefix, table)
        req["DataSourceConfiguration"]["CsvConfiguration"] = csv_cfg
        req["DataModelConfiguration"]["DataModel"]["TimeUnit"] = "SECONDS"
        desc = await wait_task(ts, (await ts.create_batch_load_task(**req))["TaskId"])
    assert desc["TaskStatus"] == "SUCCEEDED", desc
    (row,) = emu.rows(DB, table)
    assert row["time_ns"] == 5 * 10**9 and row["dimensions"] == {"host": "h1"}
    assert row["measures"]["note"] == "it's | here" and row["measures"]["seen_at"] == 7 * 10**9


async def test_bom_fails_the_file(
        batchload_emulator: BatchLoadEmulator, moto_s3: MotoServer, s3_bucket: str) -> None:
    emu, table = batchload_emulator, "cpu_bom"
    emu.register_table(DB, table)
    good = HEADER + "1000,h1,eu,1,1,true,a,1\n"
    async with aws(emu, moto_s3) as (ts, _, s3):
        prefix = await stage(s3, s3_bucket, {"1-bom.csv": b"\xef\xbb\xbf" + good.encode(),
                                             "2-good.csv": good.replace("1000", "2000")})
        desc = await wait_task(ts, (await ts.create_batch_load_task(
            **load_request(s3_bucket, prefix, table)))["TaskId"])
        report_uri = emu.task(desc["TaskId"])["ReportUri"]
        key = report_uri.removeprefix(f"s3://{s3_bucket}/")
        report = json.loads(await (await s3.get_object(Bucket=s3_bucket, Key=key))["Body"].read())
    assert desc["TaskStatus"] == "FAILED" and "1 file failures" in desc["ErrorMessage"]
    assert desc["ProgressReport"]["FileFailures"] == 1
    assert desc["ProgressReport"]["RecordsIngested"] == 1
    assert [r["time_ns"] for r in emu.rows(DB, table)] == [2000 * 10**6]
    assert key == f"reports/{desc['TaskId']}/errors.json"
    (file_error,) = report["fileErrors"]
    assert file_error["fileName"] == prefix + "1-bom.csv"
    assert "BOM" in file_error["errors"][0]["reason"]


async def test_bad_rows_fail_with_counts_and_report(
        batchload_emulator: BatchLoadEmulator, moto_s3: MotoServer, s3_bucket: str) -> None:
    emu, table = batchload_emulator, "cpu_bad"
    emu.register_table(DB, table)
    body = HEADER + ("1000,h1,eu,1,1,true,a,1\n"       # line 2 ok
                     "abc,h1,eu,1,1,true,a,1\n"        # 3 bad time
                     "-5,h1,eu,1,1,true,a,1\n"         # 4 bad time
                     "3000,h1,eu,x,1,true,a,1\n"       # 5 bad DOUBLE
                     "4000,h1,eu,1,1.5,true,a,1\n"     # 6 bad BIGINT
                     "5000,h1,eu,1,1,maybe,a,1\n"      # 7 bad BOOLEAN
                     "6000,h1,eu,1,1\n"                # 8 wrong column count
                     "1000,h1,eu,9,1,true,a,1\n"       # 9 conflicts with line 2
                     "7000,h1,eu,NULL,NULL,NULL,NULL,NULL\n"  # 10 no measure values
                     "8000,h2,eu,2,2,false,b,2\n")     # 11 ok
    async with aws(emu, moto_s3) as (ts, _, s3):
        prefix = await stage(s3, s3_bucket, {"bad.csv": body})
        desc = await wait_task(ts, (await ts.create_batch_load_task(
            **load_request(s3_bucket, prefix, table)))["TaskId"])
        listing = await s3.list_objects_v2(Bucket=s3_bucket, Prefix="reports/")
        key = listing["Contents"][0]["Key"]
        report = json.loads(await (await s3.get_object(Bucket=s3_bucket, Key=key))["Body"].read())
    assert desc["TaskStatus"] == "FAILED" and key in desc["ErrorMessage"]
    progress = desc["ProgressReport"]
    assert (progress["RecordsProcessed"], progress["RecordsIngested"]) == (10, 2)
    assert (progress["ParseFailures"], progress["RecordIngestionFailures"]) == (6, 2)
    assert sorted(r["time_ns"] // 10**6 for r in emu.rows(DB, table)) == [1000, 8000]
    lines = sorted(lr[0] for e in report["fileErrors"][0]["errors"] for lr in e["lineRanges"])
    assert lines == [3, 5, 6, 7, 8, 9, 10]  # 3-4 share a reason: one range [3, 4]
    assert report["taskId"] == desc["TaskId"] and report["taskErrors"] == []


async def test_client_token_is_idempotent(
        batchload_emulator: BatchLoadEmulator, moto_s3: MotoServer, s3_bucket: str) -> None:
    emu, table = batchload_emulator, "cpu_idem"
    emu.register_table(DB, table)
    async with aws(emu, moto_s3) as (ts, _, s3):
        prefix = await stage(s3, s3_bucket, {"a.csv": HEADER + "1000,h1,eu,1,1,true,a,1\n"})
        req = load_request(s3_bucket, prefix, table)
        first = (await ts.create_batch_load_task(**req))["TaskId"]
        second = (await ts.create_batch_load_task(**req))["TaskId"]
        with pytest.raises(ClientError) as exc:
            await ts.create_batch_load_task(**{**req, "TargetTableName": "other"})
        assert code(exc) == "ConflictException"
        # A lost response: the task is created, then the client sees a 500 and retries
        # (botocore's own retry, same ClientToken) -> still one task.
        emu.set_faults("timestream-write", script=[
            {"operation": "CreateBatchLoadTask", "error": "InternalServerException",
             "after": True}])
        req2 = {**req, "ClientToken": uuid.uuid4().hex}
        third = (await ts.create_batch_load_task(**req2))["TaskId"]
        await wait_task(ts, third)
    assert first == second and third != first
    assert [t["TaskId"] for t in emu.tasks()] == [first, third]
    assert emu.client_token_counts() == {req["ClientToken"]: 3, req2["ClientToken"]: 2}
    assert len(emu.rows(DB, table)) == 1  # the same row loaded twice is idempotent


async def test_server_side_model_validation(
        batchload_emulator: BatchLoadEmulator, moto_s3: MotoServer, s3_bucket: str) -> None:
    emu = batchload_emulator
    emu.register_table(DB, "cpu_val")
    base = load_request(s3_bucket, "batches/x/", "cpu_val")
    model = base["DataModelConfiguration"]["DataModel"]
    no_dims = {k: v for k, v in model.items() if k != "DimensionMappings"}
    cases = [
        ({"DataModelConfiguration": {"DataModel": no_dims}}, "DimensionMappings"),
        ({"DataModelConfiguration": {"DataModel": {**model, "TimeUnit": "HOURS"}}}, "TimeUnit"),
        ({"TargetTableName": "bad name!"}, "TargetTableName"),
        ({"ClientToken": "x" * 65}, "ClientToken"),
        ({"DataModelConfiguration": {"DataModel": {**model, "DimensionMappings": []}}},
         "DimensionMappings"),
    ]
    async with aws(emu, moto_s3, parameter_validation=False, retries=NO_RETRY) as (ts, dx, _):
        for override, needle in cases:
            with pytest.raises(ClientError) as exc:
                await ts.create_batch_load_task(**{**base, **override})
            assert code(exc) == "ValidationException" and needle in str(exc.value), override
            assert status(exc) == 400
        with pytest.raises(ClientError) as exc:
            await ts.describe_batch_load_task(TaskId="lower-case")
        assert code(exc) == "ValidationException"
        with pytest.raises(ClientError) as exc:
            await ts.create_batch_load_task(**{**base, "TargetTableName": "unregistered"})
        assert code(exc) == "ResourceNotFoundException"
        with pytest.raises(ClientError) as exc:  # DataSetId pattern, checked by the server
            await dx.create_revision(DataSetId="short")
        assert code(exc) == "ValidationException" and status(exc) == 400
    assert emu.tasks() == []


async def test_requests_must_be_sigv4_signed(batchload_emulator: BatchLoadEmulator) -> None:
    url = batchload_emulator.endpoint_url
    scope = "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/{}/aws4_request, " \
            "SignedHeaders=host, Signature=00"
    headers = {"X-Amz-Target": "Timestream_20181101.ListBatchLoadTasks",
               "Content-Type": "application/x-amz-json-1.0"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/", data=b"{}", headers=headers) as resp:
            assert resp.status == 403
            assert (await resp.json(content_type=None))["__type"] == \
                "MissingAuthenticationTokenException"
        wrong = {**headers, "Authorization": scope.format("dataexchange")}
        async with http.post(url + "/", data=b"{}", headers=wrong) as resp:
            assert resp.status == 403
        right = {**headers, "Authorization": scope.format("timestream")}
        async with http.post(url + "/", data=b"{}", headers=right) as resp:
            assert resp.status == 200 and await resp.json(content_type=None) == {
                "BatchLoadTasks": []}
        async with http.get(url + "/v1/jobs/" + "a" * 32) as resp:
            assert resp.status == 403 and "x-amzn-ErrorType" in resp.headers


async def test_progress_stopped_and_resume(
        batchload_emulator: BatchLoadEmulator, moto_s3: MotoServer, s3_bucket: str) -> None:
    emu, table = batchload_emulator, "cpu_resume"
    emu.register_table(DB, table)
    emu.configure(stop_after_files=1)
    files = {"1.csv": HEADER + "1000,h1,eu,1,1,true,a,1\n",
             "2.csv": HEADER + "2000,h1,eu,1,1,true,a,1\n"}
    async with aws(emu, moto_s3, retries=NO_RETRY) as (ts, _, s3):
        prefix = await stage(s3, s3_bucket, files)
        task_id = (await ts.create_batch_load_task(
            **load_request(s3_bucket, prefix, table)))["TaskId"]
        stopped = await wait_task(ts, task_id, ("PROGRESS_STOPPED", "SUCCEEDED", "FAILED"))
        rows_when_stopped = len(emu.rows(DB, table))
        await ts.resume_batch_load_task(TaskId=task_id)
        pending = (await ts.describe_batch_load_task(TaskId=task_id))["BatchLoadTaskDescription"]
        with pytest.raises(ClientError) as exc:
            await ts.resume_batch_load_task(TaskId=task_id)
        assert code(exc) == "ValidationException"
        done = await wait_task(ts, task_id)
        with pytest.raises(ClientError) as exc:
            await ts.resume_batch_load_task(TaskId="NOSUCHTASK")
        assert code(exc) == "ResourceNotFoundException"
        stopped_list = await ts.list_batch_load_tasks(TaskStatus="PROGRESS_STOPPED")
    assert stopped["TaskStatus"] == "PROGRESS_STOPPED" and "ResumableUntil" in stopped
    assert stopped["ProgressReport"]["RecordsIngested"] == 1 and rows_when_stopped == 1
    assert pending["TaskStatus"] == "PENDING_RESUME"
    assert done["TaskStatus"] == "SUCCEEDED" and done["ProgressReport"]["RecordsIngested"] == 2
    assert stopped_list["BatchLoadTasks"] == []
    assert "DescribeEndpoints" not in emu.calls()["timestream-write"]


async def test_list_batch_load_tasks_pages(
        batchload_emulator: BatchLoadEmulator, moto_s3: MotoServer, s3_bucket: str) -> None:
    emu = batchload_emulator
    emu.register_table(DB, "cpu_list")
    emu.configure(task_delay=5.0)  # they stay CREATED while we list
    async with aws(emu, moto_s3) as (ts, _, _):
        ids = [(await ts.create_batch_load_task(
            **load_request(s3_bucket, "batches/none/", "cpu_list")))["TaskId"] for _ in range(5)]
        seen: list[str] = []
        kwargs: dict[str, Any] = {"MaxResults": 2}
        while True:
            page = await ts.list_batch_load_tasks(**kwargs)
            assert len(page["BatchLoadTasks"]) <= 2
            seen += [t["TaskId"] for t in page["BatchLoadTasks"]]
            if "NextToken" not in page:
                break
            kwargs["NextToken"] = page["NextToken"]
        created = await ts.list_batch_load_tasks(TaskStatus="CREATED")
    assert seen == ids and len(created["BatchLoadTasks"]) == 5
    assert all(t["DatabaseName"] == DB for t in created["BatchLoadTasks"])


async def test_injected_faults(batchload_emulator: BatchLoadEmulator,
                               moto_s3: MotoServer) -> None:
    emu = batchload_emulator
    ds = emu.register_data_set()
    async with aws(emu, moto_s3, retries=NO_RETRY) as (ts, dx, _):
        emu.set_faults("timestream-write", script=[
            {"operation": "ListBatchLoadTasks", "error": "ThrottlingException"},
            {"operation": "ListBatchLoadTasks", "error": "InternalServerException"}])
        for expected, http in (("ThrottlingException", 400), ("InternalServerException", 500)):
            with pytest.raises(ClientError) as exc:
                await ts.list_batch_load_tasks()
            assert (code(exc), status(exc)) == (expected, http)
        await ts.list_batch_load_tasks()  # script used up
        emu.set_faults("dataexchange", throttle_rate=1.0, operations=["CreateRevision"])
        with pytest.raises(ClientError) as exc:
            await dx.create_revision(DataSetId=ds)
        assert (code(exc), status(exc)) == ("ThrottlingException", 429)
        emu.set_faults("dataexchange", internal_rate=1.0)
        with pytest.raises(ClientError) as exc:
            await dx.get_job(JobId="a" * 32)
        assert (code(exc), status(exc)) == ("InternalServerException", 500)
        emu.set_faults("all", throttle_rate=0.5, seed=7)
        outcomes = []
        for _ in range(20):
            try:
                await ts.list_batch_load_tasks()
                outcomes.append(True)
            except ClientError:
                outcomes.append(False)
    assert 3 < outcomes.count(False) < 17
    assert emu.revisions(ds) == []


async def test_data_exchange_import_flow(
        batchload_emulator: BatchLoadEmulator, moto_s3: MotoServer, s3_bucket: str) -> None:
    emu = batchload_emulator
    ds = emu.register_data_set(name="streamer")
    async with aws(emu, moto_s3) as (_, dx, s3):
        keys = ["exports/a.csv", "exports/b.csv"]
        for i, key in enumerate(keys):
            await s3.put_object(Bucket=s3_bucket, Key=key, Body=b"x" * (10 + i))
        rev = await dx.create_revision(DataSetId=ds, Comment="batch 1")
        sources = [{"Bucket": s3_bucket, "Key": k} for k in keys]
        job = await dx.create_job(Type="IMPORT_ASSETS_FROM_S3", Details={"ImportAssetsFromS3": {
            "AssetSources": sources, "DataSetId": ds, "RevisionId": rev["Id"]}})
        waiting = await dx.get_job(JobId=job["Id"])
        started = await dx.start_job(JobId=job["Id"])
        done = await wait_job(dx, job["Id"])
        with pytest.raises(ClientError) as exc:
            await dx.start_job(JobId=job["Id"])
        assert code(exc) == "ConflictException" and status(exc) == 409
        assets = (await dx.list_revision_assets(DataSetId=ds, RevisionId=rev["Id"]))["Assets"]
        page = await dx.list_revision_assets(DataSetId=ds, RevisionId=rev["Id"], MaxResults=1)
        page2 = await dx.list_revision_assets(DataSetId=ds, RevisionId=rev["Id"], MaxResults=1,
                                              NextToken=page["NextToken"])
        final = await dx.update_revision(DataSetId=ds, RevisionId=rev["Id"], Finalized=True)
        got = await dx.get_revision(DataSetId=ds, RevisionId=rev["Id"])
        with pytest.raises(ClientError) as exc:
            await dx.create_job(Type="IMPORT_ASSETS_FROM_S3", Details={"ImportAssetsFromS3": {
                "AssetSources": sources, "DataSetId": ds, "RevisionId": rev["Id"]}})
        assert code(exc) == "ConflictException"
    assert rev["Finalized"] is False and rev["Comment"] == "batch 1" and rev["DataSetId"] == ds
    assert rev["ResponseMetadata"]["HTTPStatusCode"] == 201 and 30 <= len(rev["Id"]) <= 40
    assert rev["Arn"].endswith(f"data-sets/{ds}/revisions/{rev['Id']}")
    assert job["State"] == "WAITING" and job["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert waiting["State"] == "WAITING"
    assert started["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert done["State"] == "COMPLETED" and done["Errors"] == []
    assert sorted(a["Name"] for a in assets) == keys
    assert [a["Name"] for a in page["Assets"] + page2["Assets"]] == [a["Name"] for a in assets]
    assert "NextToken" not in page2
    assert sorted(a["AssetDetails"]["S3SnapshotAsset"]["Size"] for a in assets) == [10.0, 11.0]
    assert final["Finalized"] is True and got["Finalized"] is True
    assert [a["Source"]["Key"] for a in emu.assets(ds, rev["Id"])] == keys
    assert emu.revisions(ds)[0]["Finalized"] is True


async def test_data_exchange_errors(
        batchload_emulator: BatchLoadEmulator, moto_s3: MotoServer, s3_bucket: str) -> None:
    emu = batchload_emulator
    ds = emu.register_data_set()
    emu.configure(max_assets_per_job=2)
    async with aws(emu, moto_s3, retries=NO_RETRY) as (_, dx, s3):
        await s3.put_object(Bucket=s3_bucket, Key="present.csv", Body=b"1")
        rev = await dx.create_revision(DataSetId=ds)
        sources = [{"Bucket": s3_bucket, "Key": "present.csv"},
                   {"Bucket": s3_bucket, "Key": "missing.csv"}]
        details = {"AssetSources": sources, "DataSetId": ds, "RevisionId": rev["Id"]}
        job = await dx.create_job(Type="IMPORT_ASSETS_FROM_S3",
                                  Details={"ImportAssetsFromS3": details})
        await dx.start_job(JobId=job["Id"])
        failed = await wait_job(dx, job["Id"])
        assets = (await dx.list_revision_assets(DataSetId=ds, RevisionId=rev["Id"]))["Assets"]
        too_many = {**details, "AssetSources": sources + sources[:1]}
        with pytest.raises(dx.exceptions.ServiceLimitExceededException) as exc:
            await dx.create_job(Type="IMPORT_ASSETS_FROM_S3",
                                Details={"ImportAssetsFromS3": too_many})
        assert status(exc) == 402
        assert exc.value.response["LimitName"] == "Assets per import job from Amazon S3"
        with pytest.raises(dx.exceptions.ResourceNotFoundException) as exc:
            await dx.create_revision(DataSetId="b" * 32)
        assert status(exc) == 404 and exc.value.response["ResourceType"] == "DATA_SET"
        with pytest.raises(ClientError) as exc:
            await dx.update_revision(DataSetId=ds, RevisionId=rev["Id"], Finalized=True)
        assert code(exc) == "ValidationException"  # no assets yet
        with pytest.raises(ClientError) as exc:
            await dx.create_job(Type="EXPORT_ASSETS_TO_S3", Details={"ImportAssetsFromS3": details})
        assert code(exc) == "ValidationException"
    assert failed["State"] == "ERROR" and assets == []
    (error,) = failed["Errors"]
    assert error["Code"] == "RESOURCE_NOT_FOUND_EXCEPTION" and "missing.csv" in error["Message"]
    assert error["Details"]["ImportAssetsFromS3JobErrorDetails"] == [
        {"Bucket": s3_bucket, "Key": "missing.csv"}]


def test_moto_proxy_and_freeze(moto_s3: MotoServer, s3_bucket: str,
                               s3_proxy: TcpProxy) -> None:
    fast = {"connect_timeout": 0.5, "read_timeout": 0.5, "retries": {"total_max_attempts": 1}}
    via_proxy = boto3.session.Session().client(
        "s3", endpoint_url=s3_proxy.endpoint_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(**fast))
    via_proxy.put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    for mode in ("refuse", "reset", "hang"):
        s3_proxy.disable(mode)
        with pytest.raises(BotoCoreError):
            via_proxy.get_object(Bucket=s3_bucket, Key="k")
        s3_proxy.enable()
        assert via_proxy.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"v"
    direct = moto_s3.s3(**fast)
    with moto_s3.frozen(), pytest.raises(ReadTimeoutError):
        direct.head_bucket(Bucket=s3_bucket)
    assert direct.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"v"


async def test_data_model_from_s3_with_mixed_mappings(
        batchload_emulator: BatchLoadEmulator, moto_s3: MotoServer, s3_bucket: str) -> None:
    emu, table = batchload_emulator, "mixed"
    emu.register_table(DB, table)
    model = {"TimeColumn": "t", "TimeUnit": "SECONDS",
             "DimensionMappings": [{"SourceColumn": "host"}], "MeasureNameColumn": "metric",
             "MixedMeasureMappings": [
                 {"MeasureName": "cpu", "SourceColumn": "value", "MeasureValueType": "DOUBLE"},
                 {"MeasureName": "up", "SourceColumn": "value", "MeasureValueType": "BOOLEAN"}]}
    async with aws(emu, moto_s3) as (ts, _, s3):
        await s3.put_object(Bucket=s3_bucket, Key="models/m.json", Body=json.dumps(model))
        prefix = await stage(s3, s3_bucket, {"m.csv": "t,host,metric,value\n1,h1,cpu,0.5\n"
                                                      "2,h1,up,true\n3,h1,mem,1\n"})
        from_s3 = {"DataModelS3Configuration": {"BucketName": s3_bucket,
                                                "ObjectKey": "models/m.json"}}
        req = load_request(s3_bucket, prefix, table, DataModelConfiguration=from_s3)
        desc = await wait_task(ts, (await ts.create_batch_load_task(**req))["TaskId"])
        missing = {"DataModelS3Configuration": {**from_s3["DataModelS3Configuration"],
                                                "ObjectKey": "models/none.json"}}
        req = load_request(s3_bucket, prefix, table, DataModelConfiguration=missing)
        broken = await wait_task(ts, (await ts.create_batch_load_task(**req))["TaskId"])
    assert desc["TaskStatus"] == "FAILED", desc
    assert desc["ProgressReport"]["RecordIngestionFailures"] == 1
    rows = sorted(emu.rows(DB, table), key=lambda r: r["time_ns"])
    assert [(r["measure_name"], r["measures"]) for r in rows] == [
        ("cpu", {"value": 0.5}), ("up", {"value": True})]
    assert broken["TaskStatus"] == "FAILED" and "models/none.json" in broken["ErrorMessage"]
    assert emu.task(broken["TaskId"])["TaskErrors"]
