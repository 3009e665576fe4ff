"""Shared pieces of the S3 stage / batch-load integration tests (not a test module)."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any

import orjson

from bench.gen import COLUMN_TYPES, FIELDS

COLUMNS = list(FIELDS)
AWS_REGION = "us-east-1"


def toml_str(value: str) -> str:
    return orjson.dumps(value).decode()


def stage_config(tmp_path: Path, *, paths: list[Path], bucket: str, s3_endpoint: str,
                 prefix: str = "stage/", follow: bool = False, sink: str = "",
                 s3: str = "", load: str = "", api: str = "", name: str = "streamer.toml",
                 data_dir: Path | None = None) -> Path:
    """A file source -> s3:// stage config; `sink`, `s3`, `load` are extra TOML lines
    for [sinks.st], [sinks.st.s3] and [sinks.st.load]."""
    data = data_dir or tmp_path / "data"
    text = f"""
data_dir = {toml_str(str(data))}
[api]
listen = {toml_str(api)}
[sources.f]
type = "file"
paths = {orjson.dumps([str(p) for p in paths]).decode()}
follow = {str(follow).lower()}
poll_interval_ms = 50
[sinks.st]
type = "stage"
url = {toml_str(f"s3://{bucket}/{prefix}")}
columns = {orjson.dumps(COLUMNS).decode()}
batch = {{ max_records = 2000, linger_ms = 100 }}
{sink}
[sinks.st.s3]
endpoint_url = {toml_str(s3_endpoint)}
region = "{AWS_REGION}"
{s3}
"""
    if load:
        text += f"[sinks.st.load]\n{load}\n"
    path = tmp_path / name
    path.write_text(text)
    return path


def list_keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(keys)


def read_object(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def staged_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [k for k in list_keys(s3, bucket, prefix) if "/part-" in k]


def read_rows(s3: Any, bucket: str, prefix: str) -> tuple[dict[str, bytes], list[list[str]]]:
    """Every staged object's bytes (by key) and all rows; checks header and no BOM."""
    bodies: dict[str, bytes] = {}
    rows: list[list[str]] = []
    for key in staged_keys(s3, bucket, prefix):
        raw = read_object(s3, bucket, key)
        bodies[key] = raw
        if key.endswith(".gz"):
            raw = gzip.decompress(raw)
        assert not raw.startswith(b"\xef\xbb\xbf"), f"{key} starts with a BOM"
        reader = csv.reader(io.StringIO(raw.decode("utf-8"), newline=""))
        assert next(reader) == COLUMNS, f"{key} lacks the header row"
        rows.extend(reader)
    return bodies, rows


def incomplete_uploads(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def journal(data_dir: Path, sink: str = "st") -> dict[str, dict[str, Any]]:
    """Window id -> merged state from the journal file (as a restart would see it)."""
    path = data_dir / "journal" / f"{sink}.ndjson"
    windows: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            windows.setdefault(event["window"], {}).update(event)
    return windows


def checkpoint_offset(data_dir: Path, source: str = "f") -> int:
    path = data_dir / "checkpoints" / f"{source}.json"
    if not path.exists():
        return 0
    try:
        files = orjson.loads(path.read_bytes())["files"]
    except (orjson.JSONDecodeError, KeyError):
        return 0
    return max((f["offset"] for f in files), default=0)


# -- Timestream data model over bench.gen records ----------------------------------
TS_DIMENSIONS = {"host": "host", "service": "service", "region": "region",
                 "trace_id": "trace", "session": "session"}
TS_MEASURES = [(c, COLUMN_TYPES[c]) for c in COLUMNS
               if c not in TS_DIMENSIONS and c != "time"]


def timestream_load(emulator_url: str, *, database: str, table: str,
                    extra: str = "") -> str:
    dims = ", ".join(f"{k} = {toml_str(v)}" for k, v in TS_DIMENSIONS.items())
    measures = ", ".join(
        f"{{ source = {toml_str(c)}, name = {toml_str(c + '_v')}, type = {toml_str(t)} }}"
        for c, t in TS_MEASURES)
    return f"""type = "timestream"
endpoint_url = {toml_str(emulator_url)}
database = {toml_str(database)}
table = {toml_str(table)}
time_column = "time"
time_unit = "SECONDS"
dimensions = {{ {dims} }}
measure_name = "request"
measures = [{measures}]
poll_initial_s = 0.2
poll_max_s = 1.0
{extra}"""


def _typed(value: Any, kind: str) -> Any:
    if kind == "DOUBLE":
        return float(value)
    if kind == "BIGINT":
        return int(value)
    return str(value)


def expected_timestream(records: list[dict[str, Any]]) -> list[tuple]:
    out = []
    for r in records:
        dims = sorted((dst, str(r[src])) for src, dst in TS_DIMENSIONS.items()
                      if r.get(src) is not None)
        measures = sorted((c + "_v", _typed(r[c], t)) for c, t in TS_MEASURES
                          if r.get(c) is not None)
        out.append((r["time"] * 10**9, dims, measures))
    return sorted(out)


def table_rows(rows: list[dict[str, Any]]) -> list[tuple]:
    out = []
    for row in rows:
        assert row["measure_name"] == "request"
        out.append((row["time_ns"], sorted(row["dimensions"].items()),
                    sorted(row["measures"].items())))
    return sorted(out)
