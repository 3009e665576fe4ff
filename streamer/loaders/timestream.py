"""Timestream batch load: one CreateBatchLoadTask per window, followed to its end.

The window's key prefix holds exactly its files, so a task loads the prefix.
The ClientToken is derived from the bucket, prefix and window id and
journaled before the create: a retried create -- after a lost answer or a
crash -- returns the same task instead of starting a second one.  The task id
is journaled as soon as it is known, so after a restart the window resumes
polling.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from streamer.aws.clients import AwsClients, error_code
from streamer.aws.config import TimestreamLoad, s3_location
from streamer.core.deadletter import DeadLetters
from streamer.loaders.base import (
    LoadTimedOut,
    PermanentLoadError,
    Progress,
    WaitClock,
    answered,
    poll_delays,
)
from streamer.loaders.timestream_report import report_entries
from streamer.mapping.types import timestream_type
from streamer.observability.metrics import SinkStats
from streamer.runtime.faults import FaultPoint
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.journal import Window

log = logging.getLogger("streamer.loader.timestream")

FINAL = ("SUCCEEDED", "FAILED")
TIMESTREAM = "Timestream"
# answers that no retry can change (the request itself is wrong)
# refused as the request is: retrying cannot help (ResourceNotFound: the database or
# table does not exist; AccessDenied: no permission).  Throttling, quotas, 5xx retry.
PERMANENT = ("ValidationException", "ConflictException", "ResourceNotFoundException",
             "AccessDeniedException")
COUNTS = (("RecordsProcessed", "load_records_processed"),
          ("RecordsIngested", "load_records_ingested"),
          ("ParseFailures", "load_parse_failures"),
          ("RecordIngestionFailures", "load_ingestion_failures"),
          ("FileFailures", "load_file_failures"))


def client_token(bucket: str, prefix: str, retries: int = 0) -> str:
    """64 hex chars (the ClientToken maximum), the same for the same window and
    attempt (`streamer loads retry` counts `retries`: a new task, not the failed one)."""
    attempt = f"#retry{retries}" if retries else ""
    return hashlib.sha256(f"streamer-timestream:s3://{bucket}/{prefix}{attempt}".encode()
                          ).hexdigest()


class TimestreamLoader:
    def __init__(self, cfg: TimestreamLoad, stage: StageSinkConfig, clients: AwsClients,
                 stats: SinkStats, sink: str, dead_letters: DeadLetters) -> None:
        self._cfg = cfg
        self._dead_letters = dead_letters
        self._clients = clients
        self._stats = stats
        self._sink = sink
        self._faults = FaultPoint.from_env()
        self._clock = WaitClock(cfg.max_wait_s)
        self._bucket, self._prefix = s3_location(stage.url)
        # a measure without a type takes its column's mapped type (check ensures one)
        mapped = {c.name: timestream_type(c) for c in stage.columns}
        self._measure_types = [m.type or mapped.get(m.source) for m in cfg.measures]
        self._csv = {"ColumnSeparator": stage.csv.separator, "QuoteChar": stage.csv.quote,
                     # quotes inside values are doubled (RFC 4180), no other escape
                     "EscapeChar": stage.csv.quote, "TrimWhiteSpace": cfg.trim_white_space}
        if stage.csv.null_value:  # "" (the default) is an empty field: null anyway
            self._csv["NullValue"] = stage.csv.null_value
        report = cfg.report
        self._report_bucket = report.bucket or self._bucket
        self._report_prefix = report.prefix if report.prefix is not None \
            else f"{self._prefix}_reports/"
        self._report: dict[str, Any] = {"BucketName": self._report_bucket,
                                        "EncryptionOption": report.encryption}
        if self._report_prefix:
            self._report["ObjectKeyPrefix"] = self._report_prefix
        if report.kms_key_id:
            self._report["KmsKeyId"] = report.kms_key_id

    def window_prefix(self, window: Window) -> str:
        return f"{self._prefix}{window.id}/"

    def request(self, window: Window) -> dict[str, Any]:
        cfg = self._cfg
        model = {
            "TimeColumn": cfg.time_column, "TimeUnit": cfg.time_unit,
            "DimensionMappings": [{"SourceColumn": src, "DestinationColumn": dst}
                                  for src, dst in cfg.dimensions.items()],
            "MultiMeasureMappings": {
                "TargetMultiMeasureName": cfg.measure_name,
                "MultiMeasureAttributeMappings": [
                    {"SourceColumn": m.source,
                     "TargetMultiMeasureAttributeName": m.name or m.source,
                     "MeasureValueType": kind}
                    for m, kind in zip(cfg.measures, self._measure_types, strict=True)]}}
        request: dict[str, Any] = {
            "TargetDatabaseName": cfg.database, "TargetTableName": cfg.table,
            "DataSourceConfiguration": {
                "DataSourceS3Configuration": {"BucketName": self._bucket,
                                              "ObjectKeyPrefix": self.window_prefix(window)},
                "CsvConfiguration": self._csv, "DataFormat": "CSV"},
            "ReportConfiguration": {"ReportS3Configuration": self._report},
            "DataModelConfiguration": {"DataModel": model}}
        if cfg.record_version is not None:
            request["RecordVersion"] = cfg.record_version
        return request

    async def _client(self) -> Any:
        return await self._clients.bounded_client(
            "timestream-write", region=self._cfg.region, endpoint_url=self._cfg.endpoint_url)

    async def load(self, window: Window, files: list[str], progress: Progress) -> dict[str, Any]:
        self._clock.start(window.id)
        try:
            client = await self._client()
            task_id = window.info.get("task_id")
            if not task_id:
                task_id = await self._create(client, window, progress)
            result = await self._follow(client, window, task_id, progress)
        except PermanentLoadError:
            self._clock.stop(window.id)
            raise
        self._clock.stop(window.id)
        return result

    async def _create(self, client: Any, window: Window, progress: Progress) -> str:
        token = window.info.get("client_token")
        if not token:
            token = client_token(self._bucket, self.window_prefix(window),
                                 int(window.info.get("retries") or 0))
            progress(client_token=token)  # durable before the task can exist
        try:
            created = await client.create_batch_load_task(**self.request(window),
                                                          ClientToken=token)
        except Exception as exc:
            if error_code(exc) in PERMANENT:
                raise PermanentLoadError(f"CreateBatchLoadTask refused: {exc}") from exc
            raise
        task_id = answered(created, "TaskId", "CreateBatchLoadTask", TIMESTREAM)
        self._faults.hit("load.created")
        progress(task_id=task_id)
        self._stats.count("load_jobs_created")
        log.info("window %s of sink %s: batch load task %s for s3://%s/%s", window.id,
                 self._sink, task_id, self._bucket, self.window_prefix(window))
        return task_id

    async def _follow(self, client: Any, window: Window, task_id: str,
                      progress: Progress) -> dict[str, Any]:
        delays = poll_delays(self._cfg.poll_initial_s, self._cfg.poll_max_s)
        last = window.info.get("task_status")
        while True:
            try:
                answer = await client.describe_batch_load_task(TaskId=task_id)
            except Exception as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    raise PermanentLoadError(f"batch load task {task_id} does not exist "
                                             f"(any more) at this endpoint") from exc
                raise
            task = answered(answer, "BatchLoadTaskDescription", "DescribeBatchLoadTask",
                            TIMESTREAM)
            status = answered(task, "TaskStatus", "DescribeBatchLoadTask", TIMESTREAM)
            if status != last:
                progress(task_status=status)
                log.info("window %s: batch load task %s is %s", window.id, task_id, status)
                last = status
            if status == "FAILED" or (status == "SUCCEEDED" and _failures(task)):
                await self._dead_letter_report(window, task_id)
            if status in FINAL:
                return self._finished(window, task_id, task, progress)
            if status == "PROGRESS_STOPPED":
                await self._stopped(client, window, task_id, task)
                delays = poll_delays(self._cfg.poll_initial_s, self._cfg.poll_max_s)
                continue
            if self._clock.over(window.id):
                self._timed_out(task_id, status, progress)
            await asyncio.sleep(next(delays))

    def _timed_out(self, task_id: str, status: str, progress: Progress) -> None:
        self._stats.count("load_jobs_timed_out")
        progress(timed_out=True)  # `loads retry` follows this task again
        raise LoadTimedOut(f"batch load task {task_id} still {status} after max_wait_s = "
                           f"{self._clock.max_wait_s:g}s; no longer waited for")

    async def _dead_letter_report(self, window: Window, task_id: str) -> None:
        """The rows the report names, into the sink's dead letters (a report that cannot
        be read is logged: the window fails either way, the report stays in S3)."""
        try:
            s3 = await self._clients.bounded_client("s3")
            entries = await report_entries(
                s3, self._sink, window.id, task_id, report_bucket=self._report_bucket,
                report_prefix=self._report_prefix, stage_bucket=self._bucket)
        except Exception as exc:
            log.warning("window %s: the error report of batch load task %s could not be "
                        "read (%s); its rows are not dead-lettered", window.id, task_id, exc)
            return
        self._dead_letters.write(self._sink, entries)
        self._dead_letters.sync()
        self._stats.count("rows_rejected", len(entries))

    async def _stopped(self, client: Any, window: Window, task_id: str,
                       task: dict[str, Any]) -> None:
        if not self._cfg.resume:
            self._stats.count("load_jobs_stopped")
            raise PermanentLoadError(
                f"batch load task {task_id} stopped (PROGRESS_STOPPED); resume = false, so "
                f"resume it yourself before {task.get('ResumableUntil')}")
        log.warning("window %s: batch load task %s stopped; resuming it", window.id, task_id)
        try:
            await client.resume_batch_load_task(TaskId=task_id)
        except Exception as exc:
            if error_code(exc) != "ValidationException":  # resumed already
                raise
        self._stats.count("load_jobs_resumed")

    def _finished(self, window: Window, task_id: str, task: dict[str, Any],
                  progress: Progress) -> dict[str, Any]:
        report = task.get("ProgressReport") or {}
        counts = {name: int(report.get(field, 0)) for field, name in COUNTS}
        for name, value in counts.items():
            self._stats.count(name, value)
        status = task["TaskStatus"]
        failed = status == "FAILED" or _failures(task)
        # SUCCEEDED with failures counts as `failed`: the documented contract's state for
        # such a task, the window's outcome, and what an alert on failed loads watches
        self._stats.count("load_jobs_failed" if failed else f"load_jobs_{status.lower()}")
        if failed:
            # SUCCEEDED with failures is not the documented contract (that is FAILED), but
            # the rows the report names were not loaded: the window is not loaded in full
            progress(**counts)
            where = f"s3://{self._report_bucket}/{self._report_prefix}"
            message = f"FAILED: {task.get('ErrorMessage', '')}" if status == "FAILED" else (
                f"SUCCEEDED but with {_failures(task)} failures, not loaded in full")
            log.error("window %s: batch load task %s %s (processed %d, ingested %d, "
                      "parse failures %d, ingestion failures %d, file failures %d; error "
                      "report under %s)", window.id, task_id, message,
                      counts["load_records_processed"], counts["load_records_ingested"],
                      counts["load_parse_failures"], counts["load_ingestion_failures"],
                      counts["load_file_failures"], where)
            raise PermanentLoadError(f"batch load task {task_id} {message} "
                                     f"(report under {where})")
        return {"rows": counts["load_records_ingested"], "task_id": task_id,
                "task_status": status,
                **{k: v for k, v in counts.items() if k != "load_records_ingested"}}


def _failures(task: dict[str, Any]) -> int:
    """Records and files a finished task reports as not loaded."""
    report = task.get("ProgressReport") or {}
    return sum(int(report.get(field, 0)) for field in
               ("ParseFailures", "RecordIngestionFailures", "FileFailures"))
