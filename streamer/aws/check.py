"""`streamer check` lines for an s3:// stage and the AWS loaders (never secrets), and
their `check --connect` probes."""

from __future__ import annotations

import uuid
from urllib.parse import urlparse

from streamer.aws.config import DataExchangeLoad, S3Options, TimestreamLoad, s3_location


def s3_stage_check_lines(url: str, s3, compression: str, gzip_level: int) -> list[str]:
    if urlparse(url).scheme != "s3":
        return []
    credentials = "static" if s3.access_key_id is not None else "default chain"
    gz = f" gzip_level={gzip_level}" if compression == "gzip" else ""
    sse = s3.sse + (f" kms_key_id={s3.sse_kms_key_id}" if s3.sse_kms_key_id else "")
    return [f"    s3: region={s3.region or '(default chain)'} "
            f"endpoint_url={s3.endpoint_url or '(aws)'} credentials={credentials} "
            f"path_style={str(s3.force_path_style).lower()} sse={sse}",
            f"    uploads: part_bytes={s3.part_bytes} concurrency={s3.upload_concurrency} "
            f"compression={compression}{gz} timeouts: connect={s3.connect_timeout_s:g}s "
            f"read={s3.read_timeout_s:g}s request={s3.request_timeout_s:g}s"]


def aws_load_check_lines(load, url: str, s3_region: str | None) -> list[str]:
    region = load.region or s3_region or "(default chain)"
    where = f"region={region} endpoint_url={load.endpoint_url or '(aws)'}"
    bucket, prefix = s3_location(url)
    if isinstance(load, TimestreamLoad):
        report = load.report
        report_at = (f"s3://{report.bucket or bucket}/"
                     f"{report.prefix if report.prefix is not None else prefix + '_reports/'}")
        dims = ", ".join(f"{s}->{d}" for s, d in load.dimensions.items())
        measures = ", ".join(f"{m.source}->{m.name or m.source}:{m.type}"
                             for m in load.measures)
        return [f"    load: timestream {load.database}.{load.table} {where} "
                f"resume={str(load.resume).lower()}",
                f"      time={load.time_column} ({load.time_unit}) dimensions: {dims}",
                f"      measure {load.measure_name}: {measures}",
                f"      report: {report_at} ({report.encryption})"
                + (f" record_version={load.record_version}" if load.record_version else "")]
    if isinstance(load, DataExchangeLoad):
        revision = "new per window" if load.new_revision else f"fixed {load.revision_id}"
        return [f"    load: dataexchange data_set={load.data_set_id} {where}",
                f"      revision: {revision} max_assets_per_job={load.max_assets_per_job} "
                f"finalize={str(load.finalize).lower()}"]
    return []


async def s3_stage_writable(url: str, s3: S3Options) -> tuple[bool, str]:
    """A small probe object put under the stage prefix (with the stage's
    encryption) and deleted again."""
    from streamer.aws.clients import AwsClients

    bucket, prefix = s3_location(url)
    key = f"{prefix}_streamer_check/{uuid.uuid4().hex}"
    sse: dict[str, str] = {}
    if s3.sse == "SSE_S3":
        sse = {"ServerSideEncryption": "AES256"}
    elif s3.sse == "SSE_KMS":
        sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": s3.sse_kms_key_id or ""}
    clients = AwsClients(s3)
    try:
        client = await clients.client("s3")
        await client.put_object(Bucket=bucket, Key=key, Body=b"streamer check\n", **sse)
        await client.delete_object(Bucket=bucket, Key=key)
    finally:
        await clients.close()
    return True, f"s3://{bucket}/{prefix} writable (probe object put and deleted)"


async def s3_stage_refusal(url: str, s3: S3Options) -> str | None:
    """Why S3 refuses the stage for good (its code and message: no such bucket,
    access denied, bad credentials), from one listing under the stage prefix; None
    when it answers, or when it does not answer in time (retried later as usual)."""
    import asyncio

    from botocore.exceptions import ClientError

    from streamer.aws.clients import AwsClients, error_code
    from streamer.sinks.stage.store.s3_errors import REFUSED

    bucket, prefix = s3_location(url)
    clients = AwsClients(s3)
    try:
        client = await clients.client("s3", attempts=1)
        await asyncio.wait_for(client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1),
                               s3.request_timeout_s)
    except ClientError as exc:
        code = error_code(exc)
        if code in REFUSED:
            message = exc.response.get("Error", {}).get("Message") or ""
            return f"{code}: {message}" if message else code
    except Exception:  # not answering is not a refusal: the run retries it
        pass
    finally:
        await clients.close()
    return None


async def aws_load_target_exists(load: TimestreamLoad | DataExchangeLoad,
                                 s3: S3Options) -> tuple[bool, str]:
    """The Timestream table or the Data Exchange data set, described."""
    from botocore.exceptions import ClientError

    from streamer.aws.clients import AwsClients, error_code

    clients = AwsClients(s3)
    timestream = isinstance(load, TimestreamLoad)
    what = (f"table {load.database}.{load.table}" if isinstance(load, TimestreamLoad)
            else f"data set {load.data_set_id}")
    try:
        client = await clients.client("timestream-write" if timestream else "dataexchange",
                                      region=load.region, endpoint_url=load.endpoint_url)
        if isinstance(load, TimestreamLoad):
            await client.describe_table(DatabaseName=load.database, TableName=load.table)
        else:
            await client.get_data_set(DataSetId=load.data_set_id)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False, f"{what} does not exist"
        raise
    finally:
        await clients.close()
    return True, f"{what} exists"
