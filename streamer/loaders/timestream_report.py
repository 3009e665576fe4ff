"""A FAILED batch load task's error report -> a dead letter per rejected CSV line.

Timestream writes the report as JSON under <report prefix><task id>/: per file, each
reason with the line ranges it applies to.  Each line is read back from its staged
object, so the dead letter holds the row itself (as DuckDB's rejected rows do):
`origin` the object, `offset` and `line` where the line starts, `reason`, `raw`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from streamer.aws.clients import BoundedClient
from streamer.core.deadletter import BadInput, entry

log = logging.getLogger("streamer.loader.timestream")

MAX_DEAD_LETTERS = 100_000  # per task: a report can name every line of a window


def line_starts(data: bytes) -> list[int]:
    """Byte offset of each line (index 0: line 1)."""
    starts = [0]
    position = data.find(b"\n")
    while position != -1:
        starts.append(position + 1)
        position = data.find(b"\n", position + 1)
    return starts


def _key(file_name: str, bucket: str) -> str:
    prefix = f"s3://{bucket}/"
    return file_name[len(prefix):] if file_name.startswith(prefix) else file_name


async def _read(s3: BoundedClient, bucket: str, key: str) -> bytes:
    """The whole object within the client's bound: its body streams after the call."""
    async def whole() -> bytes:
        answer = await s3.get_object(Bucket=bucket, Key=key)
        async with answer["Body"] as body:
            return await body.read()
    try:
        return await asyncio.wait_for(whole(), s3.timeout_s)
    except TimeoutError:
        raise TimeoutError(f"GetObject s3://{bucket}/{key}: no whole answer within "
                           f"{s3.setting} = {s3.timeout_s:g}s") from None


async def report_entries(s3: BoundedClient, sink: str, window_id: str, task_id: str, *,
                         report_bucket: str, report_prefix: str,
                         stage_bucket: str) -> list[dict[str, Any]]:
    """Dead-letter entries for every line the task's report names."""
    listed = await s3.list_objects_v2(Bucket=report_bucket, Prefix=f"{report_prefix}{task_id}/")
    entries: list[dict[str, Any]] = []
    for item in listed.get("Contents") or []:
        report = orjson.loads(await _read(s3, report_bucket, item["Key"]))
        for file_errors in report.get("fileErrors") or []:
            key = _key(str(file_errors.get("fileName", "")), stage_bucket)
            data = await _read(s3, stage_bucket, key)
            starts = line_starts(data)
            for error in file_errors.get("errors") or []:
                for first, last in error.get("lineRanges") or []:
                    for line in range(int(first), int(last) + 1):
                        if len(entries) >= MAX_DEAD_LETTERS or not 0 < line <= len(starts):
                            continue
                        start = starts[line - 1]
                        end = starts[line] if line < len(starts) else len(data)
                        raw = data[start:end].rstrip(b"\r\n")
                        entries.append(entry(sink, f"s3://{stage_bucket}/{key}",
                                             BadInput(start, str(error.get("reason")), raw),
                                             window=window_id, line=line, task_id=task_id))
    if len(entries) >= MAX_DEAD_LETTERS:
        log.warning("batch load task %s: its report names more lines than the %d "
                    "dead-lettered; the rest are in the report", task_id, MAX_DEAD_LETTERS)
    return entries
