"""What an s3:// stage wrote to the bucket: keys, objects, their CSV rows."""

from __future__ import annotations

import gzip
from typing import Any

from tests.helpers.csvfiles import BOM, parse_csv
from tests.helpers.records import BENCH_COLUMNS


def list_keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(keys)


def read_object(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def staged_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [k for k in list_keys(s3, bucket, prefix) if "/part-" in k]


def read_rows(s3: Any, bucket: str, prefix: str,
              columns: list[str] = BENCH_COLUMNS) -> tuple[dict[str, bytes], list[list[str]]]:
    """Every staged object's bytes (by key) and all rows; checks header and no BOM."""
    bodies: dict[str, bytes] = {}
    rows: list[list[str]] = []
    for key in staged_keys(s3, bucket, prefix):
        raw = read_object(s3, bucket, key)
        bodies[key] = raw
        if key.endswith(".gz"):
            raw = gzip.decompress(raw)
        header, *object_rows = parse_csv(raw)
        assert not header[0].startswith(BOM), f"{key} starts with a BOM"
        assert header == columns, f"{key} lacks the header row"
        rows.extend(object_rows)
    return bodies, rows


def incomplete_uploads(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
