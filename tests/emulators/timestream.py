"""Timestream Write batch-load operations (CreateBatchLoadTask and friends).

Task life: CREATED -(delay)-> IN_PROGRESS -> files read from S3 one by one ->
(delay) -> SUCCEEDED, or FAILED when any file/parse/ingestion failure happened.
With `succeed_with_failures` set, a task with failures writes its report all the same
but ends SUCCEEDED (no ErrorMessage): not the documented contract, the case a loader
must survive anyway.
With `stop_after_files` set, a task stops at PROGRESS_STOPPED after that many files;
ResumeBatchLoadTask moves it to PENDING_RESUME -(delay)-> IN_PROGRESS and it finishes.
Rows that were ingested stay ingested when the task ends FAILED (no rollback).
The error report is JSON like the real one, at <report prefix>/<TaskId>/errors.json.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .batchload_common import (
    ApiError,
    ModelValidator,
    S3Access,
    epoch_now,
    new_task_id,
    page,
)
from .timestream_csv import CsvSpec, DataModelSpec, FileResult, Record, build_data_model, parse_file

Spawn = Callable[[Coroutine[Any, Any, None]], None]
ACTIVE = ("CREATED", "IN_PROGRESS", "PENDING_RESUME")
RESUMABLE_SECONDS = 24 * 3600


class TaskError(Exception):
    """A task-level error (not tied to a file): ends the task FAILED."""


@dataclass
class TimestreamConfig:
    task_delay: float = 0.2
    stop_after_files: int | None = None
    max_active_tasks: int | None = None
    succeed_with_failures: bool = False
    # tasks stay IN_PROGRESS while set (a task that never ends); unset, they go on
    hold_tasks: bool = False


@dataclass
class Task:
    task_id: str
    request: dict[str, Any]
    token: str | None
    status: str = "CREATED"
    created: float = field(default_factory=epoch_now)
    updated: float = field(default_factory=epoch_now)
    resumable_until: float | None = None
    error_message: str | None = None
    progress: Counter[str] = field(default_factory=Counter)
    stop_after: int | None = None
    model: DataModelSpec | None = None
    files: list[tuple[str, int]] | None = None
    next_file: int = 0
    failures: list[tuple[str, int | None, str]] = field(default_factory=list)
    task_errors: list[str] = field(default_factory=list)
    report_uri: str | None = None

    @property
    def db_table(self) -> tuple[str, str]:
        return self.request["TargetDatabaseName"], self.request["TargetTableName"]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "TaskId": self.task_id, "TaskStatus": self.status,
            "DataSourceConfiguration": self.request["DataSourceConfiguration"],
            "ReportConfiguration": self.request["ReportConfiguration"],
            "DataModelConfiguration": self.request["DataModelConfiguration"],
            "TargetDatabaseName": self.db_table[0], "TargetTableName": self.db_table[1],
            "ProgressReport": {k: self.progress[k] for k in (
                "RecordsProcessed", "RecordsIngested", "ParseFailures",
                "RecordIngestionFailures", "FileFailures", "BytesMetered")},
            "CreationTime": self.created, "LastUpdatedTime": self.updated,
        }
        if "RecordVersion" in self.request:
            out["RecordVersion"] = self.request["RecordVersion"]
        if self.error_message:
            out["ErrorMessage"] = self.error_message
        if self.resumable_until is not None:
            out["ResumableUntil"] = self.resumable_until
        return out

    def summary(self) -> dict[str, Any]:
        out = {"TaskId": self.task_id, "TaskStatus": self.status,
               "DatabaseName": self.db_table[0], "TableName": self.db_table[1],
               "CreationTime": self.created, "LastUpdatedTime": self.updated}
        if self.resumable_until is not None:
            out["ResumableUntil"] = self.resumable_until
        return out


class TimestreamService:
    def __init__(self, s3: S3Access, validator: ModelValidator, config: TimestreamConfig,
                 spawn: Spawn, address: str) -> None:
        self.s3, self.validator, self.config = s3, validator, config
        self.spawn, self.address = spawn, address
        self.databases: set[str] = set()
        self.tables: dict[tuple[str, str], dict[tuple[Any, ...], dict[str, Any]]] = {}
        self.tasks: dict[str, Task] = {}
        self.tokens: dict[str, str] = {}
        self.token_calls: Counter[str] = Counter()

    def register_table(self, database: str, table: str) -> None:
        self.databases.add(database)
        self.tables.setdefault((database, table), {})

    def rows(self, database: str, table: str) -> list[dict[str, Any]] | None:
        data = self.tables.get((database, table))
        return None if data is None else list(data.values())

    def control_tasks(self) -> list[dict[str, Any]]:
        return [{**t.describe(), "ClientToken": t.token, "ReportUri": t.report_uri,
                 "Files": [k for k, _ in t.files or []], "TaskErrors": t.task_errors}
                for t in self.tasks.values()]

    async def call(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = {"CreateBatchLoadTask": self.create, "DescribeBatchLoadTask": self.describe,
                   "ResumeBatchLoadTask": self.resume, "ListBatchLoadTasks": self.list_tasks,
                   "DescribeEndpoints": self.describe_endpoints,
                   "DescribeTable": self.describe_table}.get(op)
        if handler is None:
            raise ApiError("UnknownOperationException", f"Operation {op} is not supported")
        return handler(params)

    def describe_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"Endpoints": [{"Address": self.address, "CachePeriodInMinutes": 1440}]}

    def describe_table(self, params: dict[str, Any]) -> dict[str, Any]:
        database, table = params["DatabaseName"], params["TableName"]
        if (database, table) not in self.tables:
            raise ApiError("ResourceNotFoundException",
                           f"The table {table} does not exist in database {database}.")
        return {"Table": {"DatabaseName": database, "TableName": table,
                          "TableStatus": "ACTIVE"}}

    def _task(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise ApiError("ResourceNotFoundException", f"Batch load task {task_id} not found")
        return task

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("ClientToken")
        request = {k: v for k, v in params.items() if k != "ClientToken"}
        if token is not None and token in self.tokens:
            task = self.tasks[self.tokens[token]]
            if task.request != request:
                raise ApiError("ConflictException", "ClientToken was already used with "
                               "different parameters")
            return {"TaskId": task.task_id}
        self._check_semantics(request)
        database, table = request["TargetDatabaseName"], request["TargetTableName"]
        if database not in self.databases:
            raise ApiError("ResourceNotFoundException", f"The database {database} does not exist.")
        if (database, table) not in self.tables:
            raise ApiError("ResourceNotFoundException",
                           f"The table {table} does not exist in database {database}.")
        limit = self.config.max_active_tasks
        if limit is not None and sum(t.status in ACTIVE for t in self.tasks.values()) >= limit:
            raise ApiError("ServiceQuotaExceededException",
                           f"At most {limit} batch load tasks can be active")
        task = Task(new_task_id(), request, token, stop_after=self.config.stop_after_files)
        dm = request["DataModelConfiguration"].get("DataModel")
        task.model = build_data_model(dm) if dm else None
        self.tasks[task.task_id] = task
        if token is not None:
            self.tokens[token] = task.task_id
        self.spawn(self._run(task))
        return {"TaskId": task.task_id}

    def _check_semantics(self, request: dict[str, Any]) -> None:
        dmc = request.get("DataModelConfiguration") or {}
        report = (request.get("ReportConfiguration") or {}).get("ReportS3Configuration")
        try:
            if bool(dmc.get("DataModel")) == bool(dmc.get("DataModelS3Configuration")):
                raise ValueError("DataModelConfiguration needs exactly one of DataModel or "
                                 "DataModelS3Configuration")
            s3_model = dmc.get("DataModelS3Configuration")
            if s3_model and not (s3_model.get("BucketName") and s3_model.get("ObjectKey")):
                raise ValueError("DataModelS3Configuration needs BucketName and ObjectKey")
            if dmc.get("DataModel"):
                build_data_model(dmc["DataModel"])
            CsvSpec.from_config(request["DataSourceConfiguration"].get("CsvConfiguration"))
            if not report:
                raise ValueError("ReportConfiguration.ReportS3Configuration is required")
            if report.get("EncryptionOption") == "SSE_KMS" and not report.get("KmsKeyId"):
                raise ValueError("KmsKeyId is required when EncryptionOption is SSE_KMS")
        except ValueError as exc:
            raise ApiError("ValidationException", str(exc)) from None

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"BatchLoadTaskDescription": self._task(params["TaskId"]).describe()}

    def resume(self, params: dict[str, Any]) -> dict[str, Any]:
        task = self._task(params["TaskId"])
        if task.status != "PROGRESS_STOPPED":
            raise ApiError("ValidationException", f"Batch load task {task.task_id} is "
                           f"{task.status}; only a PROGRESS_STOPPED task can be resumed")
        self._set(task, "PENDING_RESUME")
        task.resumable_until = None
        self.spawn(self._run(task))
        return {}

    def list_tasks(self, params: dict[str, Any]) -> dict[str, Any]:
        summaries = [t.summary() for t in self.tasks.values()
                     if params.get("TaskStatus") in (None, t.status)]
        return page(summaries, params, "BatchLoadTasks", 100, "Invalid NextToken")

    def _set(self, task: Task, status: str) -> None:
        task.status, task.updated = status, epoch_now()

    async def _run(self, task: Task) -> None:
        await asyncio.sleep(self.config.task_delay)
        self._set(task, "IN_PROGRESS")
        while self.config.hold_tasks:
            await asyncio.sleep(0.05)
        try:
            await self._process(task)
        except asyncio.CancelledError:
            raise
        except TaskError as exc:
            task.task_errors.append(str(exc))
        except Exception as exc:
            task.task_errors.append(f"Internal error while reading from S3: {exc}")
        if task.status == "PROGRESS_STOPPED":
            return
        await asyncio.sleep(self.config.task_delay)
        await self._finish(task)

    async def _process(self, task: Task) -> None:
        source = task.request["DataSourceConfiguration"]
        s3cfg = source["DataSourceS3Configuration"]
        bucket, prefix = s3cfg["BucketName"], s3cfg.get("ObjectKeyPrefix", "")
        if task.model is None:
            task.model = await self._load_model(task)
        if task.files is None:
            keys = await asyncio.to_thread(self.s3.list_keys, bucket, prefix)
            task.files = [(k, n) for k, n in keys if not k.endswith("/")]
            if not task.files:
                raise TaskError(f"No data files found under s3://{bucket}/{prefix}")
        csv_spec = CsvSpec.from_config(source.get("CsvConfiguration"))
        while task.next_file < len(task.files):
            if task.stop_after is not None and task.next_file >= task.stop_after:
                task.stop_after = None
                self._set(task, "PROGRESS_STOPPED")
                task.resumable_until = epoch_now() + RESUMABLE_SECONDS
                return
            key, _ = task.files[task.next_file]
            data = await asyncio.to_thread(self.s3.get, bucket, key)
            result = await asyncio.to_thread(parse_file, key, data, csv_spec, task.model)
            self._apply(task, bucket, result)
            task.next_file += 1
            task.updated = epoch_now()

    async def _load_model(self, task: Task) -> DataModelSpec:
        loc = task.request["DataModelConfiguration"]["DataModelS3Configuration"]
        try:
            raw = await asyncio.to_thread(self.s3.get, loc["BucketName"], loc["ObjectKey"])
            data = json.loads(raw)
            problems = self.validator.shape_errors(data, "DataModel")
            if problems:
                raise ValueError(problems)
            return build_data_model(data)
        except Exception as exc:
            raise TaskError(f"Cannot use the data model at s3://{loc['BucketName']}/"
                            f"{loc['ObjectKey']}: {exc}") from None

    def _apply(self, task: Task, bucket: str, result: FileResult) -> None:
        progress = task.progress
        if result.file_error is not None:
            progress["FileFailures"] += 1
            task.failures.append((result.key, None, result.file_error))
            return
        progress["BytesMetered"] += result.size
        progress["RecordsProcessed"] += result.rows
        bad_lines: set[int] = set()
        for line, err in result.row_errors:
            bad_lines.add(line)
            progress["ParseFailures" if err.kind == "parse" else "RecordIngestionFailures"] += 1
            task.failures.append((result.key, line, err.reason))
        table = self.tables.setdefault(task.db_table, {})
        version = int(task.request.get("RecordVersion", 1))
        for rec in result.records:
            reason = self._ingest(table, rec, version, task, bucket, result.key)
            if reason is not None and rec.line not in bad_lines:
                bad_lines.add(rec.line)
                progress["RecordIngestionFailures"] += 1
                task.failures.append((result.key, rec.line, reason))
        progress["RecordsIngested"] += result.rows - len(bad_lines)

    @staticmethod
    def _ingest(table: dict[tuple[Any, ...], dict[str, Any]], rec: Record, version: int,
                task: Task, bucket: str, key: str) -> str | None:
        if not rec.measure_name:
            return "The record has no measure name"
        if not rec.measures:
            return "The record has no measure values"
        ident = (rec.measure_name, rec.time_ns, tuple(sorted(rec.dimensions.items())))
        existing = table.get(ident)
        if existing is not None and version <= existing["version"]:
            if existing["measures"] == rec.measures:
                return None
            return ("A record with the same dimensions, time and measure name already exists "
                    "with different measure values and an equal or higher version")
        table[ident] = {"time_ns": rec.time_ns, "measure_name": rec.measure_name,
                        "dimensions": rec.dimensions, "measures": rec.measures,
                        "measure_types": rec.measure_types, "version": version,
                        "task_id": task.task_id,
                        "source": {"bucket": bucket, "key": key, "line": rec.line}}
        return None

    async def _finish(self, task: Task) -> None:
        if not task.failures and not task.task_errors:
            self._set(task, "SUCCEEDED")
            return
        p = task.progress
        message = (f"Batch load task finished with errors: {p['FileFailures']} file failures, "
                   f"{p['ParseFailures']} parse failures, {p['RecordIngestionFailures']} "
                   f"record ingestion failures")
        if task.task_errors:
            message += "; " + "; ".join(task.task_errors)
        try:
            task.report_uri = await self._write_report(task)
            message += f". Error report: {task.report_uri}"
        except Exception as exc:
            message += f". The error report could not be written: {exc}"
        if self.config.succeed_with_failures:
            self._set(task, "SUCCEEDED")
            return
        task.error_message = message[:2048]
        self._set(task, "FAILED")

    async def _write_report(self, task: Task) -> str:
        cfg = task.request["ReportConfiguration"]["ReportS3Configuration"]
        prefix = cfg.get("ObjectKeyPrefix", "").rstrip("/")
        key = f"{prefix}/{task.task_id}/errors.json" if prefix else f"{task.task_id}/errors.json"
        by_file: dict[str, dict[str, list[list[int]]]] = {}
        for file_key, line, reason in task.failures:
            ranges = by_file.setdefault(file_key, {}).setdefault(reason, [])
            if line is None:
                continue
            if ranges and ranges[-1][1] == line - 1:
                ranges[-1][1] = line
            else:
                ranges.append([line, line])
        report = {"taskId": task.task_id,
                  "taskErrors": [{"reason": r} for r in task.task_errors],
                  "fileErrors": [{"fileName": f, "errors": [
                      {"reason": r, "lineRanges": lr} for r, lr in errs.items()]}
                      for f, errs in by_file.items()]}
        body = json.dumps(report, indent=2).encode()
        await asyncio.to_thread(self.s3.put, cfg["BucketName"], key, body, "application/json")
        return f"s3://{cfg['BucketName']}/{key}"
