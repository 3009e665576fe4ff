"""Config models of the S3 stage and the AWS batch loaders (Timestream, Data Exchange).

Kept apart from config.py (which imports them into the stage sink and the
`load` union); `stage_problems` holds the checks that need the whole sink.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    Field,
    PositiveFloat,
    SecretStr,
    field_validator,
    model_validator,
)

from streamer.config.base import Model
from streamer.config.file_digest import files_digest
from streamer.config.urls import port_problem

MIB = 1024 * 1024
S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# what Timestream accepts in an ObjectKeyPrefix (its service model's pattern)
TS_KEY_PREFIX = re.compile(r"^[a-zA-Z0-9|!\-_*'()][a-zA-Z0-9!\-_*'()/.]*$")
TS_SEPARATORS = (",", "|", ";", "\t", " ")
TS_NAME = r"^[a-zA-Z0-9_.-]{3,256}$"
DX_ID = r"^[a-zA-Z0-9]{30,40}$"


def s3_location(url: str) -> tuple[str, str]:
    """s3://bucket/some/prefix -> ("bucket", "some/prefix/"); "" when no prefix."""
    parsed = urlparse(url)
    prefix = parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return parsed.netloc, prefix


def _check_endpoint(value: str | None) -> str | None:
    if not value:  # "" (an unset ${VAR:-}) is the service's own endpoint
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http(s)://host[:port] URL")
    if parsed.username is not None:  # `check` prints the URL; never echo it here
        raise ValueError("must be an http(s)://host[:port] URL with no user:password@ "
                         "(credentials: access_key_id / secret_access_key or the AWS chain)")
    if problem := port_problem(parsed):
        raise ValueError(f"must be an http(s)://host[:port] URL ({problem})")
    return value


def check_stage_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme == "file":
        if not value.startswith("file:///") or parsed.path in ("", "/"):
            raise ValueError(f"{value!r}: a file url must be file:///absolute/dir/ (three "
                             f"slashes; file://NAME/ would drop NAME and write under /)")
        return value
    if parsed.scheme == "s3":
        bucket, prefix = s3_location(value)
        if not S3_BUCKET.match(bucket) or ".." in bucket:
            raise ValueError(f"s3 url: {bucket!r} is not a valid bucket name")
        if parsed.query or parsed.fragment or "//" in prefix:
            raise ValueError("s3 url must be s3://bucket/prefix/ (no query, no empty "
                             "path segments)")
        return value
    raise ValueError("must be a file:///absolute/dir/ or s3://bucket/prefix/ url")


class S3Options(Model):
    """[sinks.NAME.s3]: how an s3:// stage reaches S3."""

    region: str | None = None  # None: the standard chain (AWS_REGION, ~/.aws/config)
    endpoint_url: str | None = None
    # static credentials; None: the standard AWS credential chain
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    force_path_style: bool = False
    sse: Literal["none", "SSE_S3", "SSE_KMS"] = "none"
    sse_kms_key_id: str | None = None
    # multipart: a file reaching part_bytes goes up in parts of at least this size
    part_bytes: Annotated[int, Field(ge=5 * MIB, le=5 * 1024 * MIB)] = 8 * MIB
    upload_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    connect_timeout_s: PositiveFloat = 5.0
    read_timeout_s: PositiveFloat = 60.0
    # a whole request, body upload included (a server that stops reading never
    # trips the read timeout); then it is retried
    request_timeout_s: PositiveFloat = 120.0

    _endpoint = field_validator("endpoint_url")(_check_endpoint)

    @model_validator(mode="after")
    def _consistent(self) -> S3Options:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither "
                             "(the standard AWS credential chain)")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        if self.sse == "SSE_KMS" and not self.sse_kms_key_id:
            raise ValueError('sse = "SSE_KMS" needs sse_kms_key_id')
        if self.sse_kms_key_id and self.sse != "SSE_KMS":
            raise ValueError('sse_kms_key_id is only used with sse = "SSE_KMS"')
        return self


def shared_files() -> tuple[str, str]:
    """The AWS SDK's shared credentials and config files, where botocore looks."""
    return (os.path.expanduser(os.environ.get("AWS_SHARED_CREDENTIALS_FILE",
                                              "~/.aws/credentials")),
            os.path.expanduser(os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")))


def shared_files_digest(s3: S3Options) -> str:
    """What the shared files hold when the credentials come from the standard chain
    (botocore reads them once per session: rotated keys need new clients); "" with
    static keys in the config."""
    if s3.access_key_id is not None:
        return ""
    return files_digest(shared_files())


class _AwsService(Model):
    # default: the stage's s3.region; the endpoint is passed to the client explicitly
    # (for Timestream this also turns endpoint discovery off)
    region: str | None = None
    endpoint_url: str | None = None
    poll_initial_s: PositiveFloat = 1.0
    poll_max_s: PositiveFloat = 30.0
    # a window whose task / job is still running after this long fails (retryable by
    # `streamer loads retry`, which follows the same task / job): real loads take hours
    max_wait_s: PositiveFloat = 86_400.0

    _endpoint = field_validator("endpoint_url")(_check_endpoint)

    @model_validator(mode="after")
    def _poll(self) -> _AwsService:
        if self.poll_max_s < self.poll_initial_s:
            raise ValueError("poll_max_s must be >= poll_initial_s")
        return self


class TimestreamMeasure(Model):
    source: Annotated[str, Field(min_length=1)]
    name: str | None = None  # TargetMultiMeasureAttributeName; default: source
    # None: from the stage column's mapped type (integer BIGINT, double DOUBLE, ...)
    type: Literal["DOUBLE", "BIGINT", "BOOLEAN", "VARCHAR", "TIMESTAMP"] | None = None


class TimestreamReport(Model):
    bucket: str | None = None  # default: the stage bucket
    prefix: str | None = None  # default: <stage prefix>_reports/
    encryption: Literal["SSE_S3", "SSE_KMS"] = "SSE_S3"
    kms_key_id: str | None = None

    @model_validator(mode="after")
    def _kms(self) -> TimestreamReport:
        if (self.encryption == "SSE_KMS") != bool(self.kms_key_id):
            raise ValueError('kms_key_id is required with encryption = "SSE_KMS" and only '
                             "used with it")
        if self.bucket is not None and not S3_BUCKET.match(self.bucket):
            raise ValueError(f"bucket {self.bucket!r} is not a valid bucket name")
        return self


class TimestreamLoad(_AwsService):
    type: Literal["timestream"]
    database: Annotated[str, Field(pattern=TS_NAME)]
    table: Annotated[str, Field(pattern=TS_NAME)]
    time_column: Annotated[str, Field(min_length=1)]
    time_unit: Literal["MILLISECONDS", "SECONDS", "MICROSECONDS", "NANOSECONDS"] = \
        "MILLISECONDS"
    # source column -> destination dimension name
    dimensions: Annotated[dict[str, str], Field(min_length=1)]
    measure_name: Annotated[str, Field(min_length=1)]  # TargetMultiMeasureName
    measures: Annotated[list[TimestreamMeasure], Field(min_length=1)]
    trim_white_space: bool = False
    report: TimestreamReport = TimestreamReport()
    record_version: Annotated[int, Field(ge=1)] | None = None
    resume: bool = True  # ResumeBatchLoadTask when a task stops at PROGRESS_STOPPED

    def columns(self) -> list[str]:
        return [self.time_column, *self.dimensions, *(m.source for m in self.measures)]


class DataExchangeLoad(_AwsService):
    type: Literal["dataexchange"]
    data_set_id: Annotated[str, Field(pattern=DX_ID)]
    # "new": one revision per window (its comment names the window); "fixed": revision_id
    revision: Literal["new", "fixed"] | None = None  # default: fixed if revision_id is set
    revision_id: Annotated[str, Field(pattern=DX_ID)] | None = None
    max_assets_per_job: Annotated[int, Field(ge=1, le=10_000)] = 100
    finalize: bool = True

    @model_validator(mode="after")
    def _revision(self) -> DataExchangeLoad:
        mode = self.revision or ("fixed" if self.revision_id else "new")
        if mode == "fixed" and not self.revision_id:
            raise ValueError('revision = "fixed" needs revision_id')
        if mode == "new" and self.revision_id:
            raise ValueError('revision_id is only used with revision = "fixed"')
        if mode == "fixed" and self.finalize:
            raise ValueError("finalize = true needs revision = \"new\": a finalized "
                             "revision takes no further assets")
        return self

    @property
    def new_revision(self) -> bool:
        return self.revision_id is None


def stage_problems(url: str, columns: list[str], separator: str, quote: str, fmt: str,
                   compression: str, load: BaseModel) -> list[str]:
    """Checks across the stage sink and its loader (messages without the key path)."""
    s3 = urlparse(url).scheme == "s3"
    problems = []
    load_type = getattr(load, "type", "none")
    if load_type == "duckdb" and s3:
        problems.append("load: duckdb reads local stage files; it needs a file:// url")
    if load_type in ("timestream", "dataexchange") and not s3:
        problems.append(f"load: {load_type} loads objects from S3; it needs an s3:// url")
    if isinstance(load, TimestreamLoad):  # its batch load reads plain CSV objects only
        if fmt != "csv":
            problems.append(f'format: a timestream load reads CSV files only, not {fmt} '
                            '(format = "csv")')
        elif compression != "none":
            problems.append("compression: a timestream load needs plain CSV files "
                            '(compression = "none")')
        unknown = [c for c in dict.fromkeys(load.columns()) if c not in columns]
        if unknown:
            problems.append(f"load: timestream mapping names columns not in columns: "
                            f"{', '.join(unknown)}")
        if separator not in TS_SEPARATORS:
            problems.append(f"csv.separator: timestream accepts only "
                            f"{', '.join(repr(s) for s in TS_SEPARATORS)}")
        if quote not in ("'", '"'):
            problems.append("csv.quote: timestream accepts only ' or \"")
        _, prefix = s3_location(url)
        if prefix and not TS_KEY_PREFIX.match(prefix):
            problems.append(f"url: timestream needs a key prefix of letters, digits and "
                            f"!-_*'()/. only, not {prefix!r}")
        report = load.report.prefix
        if report and not TS_KEY_PREFIX.match(report):
            problems.append(f"load.report.prefix: letters, digits and !-_*'()/. only, "
                            f"not {report!r}")
    return problems
