"""Shared pieces of the batch-load emulator: model validation, errors, faults, S3.

Everything here is per-instance state; nothing is kept at module level.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

ACCOUNT_ID = "123456789012"
AUTH_SCHEME = "AWS4-HMAC-SHA256"


class ApiError(Exception):
    """An error answered to the client in the service's own protocol."""

    def __init__(self, code: str, message: str, **fields: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = fields


def page(items: list[Any], params: dict[str, Any], key: str, default_size: int,
         bad_token: str) -> dict[str, Any]:
    """The answer of a List call: under `key` the items from the request's NextToken
    ("nt-<start>") on, at most MaxResults (or `default_size`), and the NextToken of the
    next page while there is one; `bad_token` is the message for a token not handed out."""
    token = params.get("NextToken")
    try:
        start = int(token.removeprefix("nt-")) if token else 0
    except ValueError:
        raise ApiError("ValidationException", bad_token) from None
    size = params.get("MaxResults") or default_size
    out: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        out["NextToken"] = f"nt-{start + size}"
    return out


def new_hex_id() -> str:
    """32 chars of [0-9a-f]: matches Data Exchange `[a-zA-Z0-9]{30,40}`."""
    return uuid.uuid4().hex


def new_task_id() -> str:
    """32 chars of [0-9A-F]: matches Timestream BatchLoadTaskId `[A-Z0-9]{3,32}`."""
    return uuid.uuid4().hex.upper()


def epoch_now() -> float:
    return round(time.time(), 3)


def iso_now() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class ModelValidator:
    """Checks request/response dicts against a botocore service model.

    botocore's ParamValidator checks required members, types, unknown members and
    minimums. The real services also enforce enums, maximums and patterns, so
    those are checked here too (patterns are applied anchored, i.e. fullmatch).
    """

    def __init__(self, service_name: str) -> None:
        self.model: ServiceModel = botocore.session.get_session().get_service_model(
            service_name
        )
        self._patterns: dict[str, re.Pattern[str] | None] = {}

    def operation(self, name: str) -> OperationModel:
        return self.model.operation_model(name)

    def input_errors(self, op_name: str, params: dict[str, Any]) -> str | None:
        shape = self.operation(op_name).input_shape
        return self._errors(params, shape) if shape is not None else None

    def output_errors(self, op_name: str, result: dict[str, Any]) -> str | None:
        shape = self.operation(op_name).output_shape
        return self._errors(result, shape) if shape is not None else None

    def shape_errors(self, params: Any, shape_name: str) -> str | None:
        return self._errors(params, self.model.shape_for(shape_name))

    def _errors(self, params: Any, shape: Shape) -> str | None:
        report = ParamValidator().validate(params, shape)
        problems: list[str] = []
        if report.has_errors():
            problems.append(report.generate_report())
        self._constraints(params, shape, shape.name, problems)
        return "\n".join(problems) if problems else None

    def _pattern(self, pattern: str) -> re.Pattern[str] | None:
        if pattern not in self._patterns:
            try:
                self._patterns[pattern] = re.compile(pattern)
            except re.error:
                self._patterns[pattern] = None
        return self._patterns[pattern]

    def _constraints(self, value: Any, shape: Shape, path: str, out: list[str]) -> None:
        kind = shape.type_name
        meta = shape.metadata
        if kind == "structure" and isinstance(value, dict):
            for key, item in value.items():
                member = shape.members.get(key)
                if member is not None and item is not None:
                    self._constraints(item, member, f"{path}.{key}", out)
        elif kind == "list" and isinstance(value, list):
            if "max" in meta and len(value) > meta["max"]:
                out.append(f"Invalid length for parameter {path}, value: {len(value)}, "
                           f"valid max length: {meta['max']}")
            for i, item in enumerate(value):
                self._constraints(item, shape.member, f"{path}[{i}]", out)
        elif kind == "map" and isinstance(value, dict):
            for key, item in value.items():
                self._constraints(key, shape.key, f"{path} (key)", out)
                self._constraints(item, shape.value, f"{path}.{key}", out)
        elif kind == "string" and isinstance(value, str):
            enum = shape.enum
            if enum and value not in enum:
                out.append(f"Invalid value for parameter {path}, value: {value!r}, "
                           f"valid values: {', '.join(enum)}")
            if "max" in meta and len(value) > meta["max"]:
                out.append(f"Invalid length for parameter {path}, value: {len(value)}, "
                           f"valid max length: {meta['max']}")
            pattern = self._pattern(meta["pattern"]) if "pattern" in meta else None
            if pattern is not None and not pattern.fullmatch(value):
                out.append(f"Invalid value for parameter {path}, value: {value!r}, "
                           f"must match pattern: {meta['pattern']}")
        elif (kind in ("integer", "long", "double", "float") and isinstance(value, int | float)
              and "max" in meta and value > meta["max"]):
            out.append(f"Invalid value for parameter {path}, value: {value}, "
                       f"valid max value: {meta['max']}")


def error_status(model: ServiceModel, code: str) -> int:
    """HTTP status for an error code: the model's httpStatusCode, else 400/500."""
    for shape in model.error_shapes:
        if shape.name == code:
            status = shape.metadata.get("error", {}).get("httpStatusCode")
            if status:
                return int(status)
            return 500 if getattr(shape, "_shape_model", {}).get("fault") else 400
    return 500 if code in ("InternalServerException", "InternalFailure") else 400


def check_sigv4(headers: Any, signing_name: str, region: str) -> ApiError | None:
    """Requires a SigV4 Authorization header with the right scope; no signature check."""
    auth = headers.get("Authorization", "")
    if not auth:
        return ApiError("MissingAuthenticationTokenException", "Missing Authentication Token")
    if not auth.startswith(AUTH_SCHEME + " "):
        return ApiError("IncompleteSignatureException",
                        f"Authorization header must use {AUTH_SCHEME}")
    match = re.search(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request", auth)
    if match is None:
        return ApiError("IncompleteSignatureException", "Malformed Credential in Authorization")
    if match.group(4) != signing_name:
        return ApiError("InvalidSignatureException",
                        f"Credential should be scoped to correct service: '{signing_name}'.")
    if match.group(3) != region:
        return ApiError("InvalidSignatureException",
                        f"Credential should be scoped to a valid region, not "
                        f"'{match.group(3)}'; expected '{region}'.")
    if "SignedHeaders=" not in auth or "Signature=" not in auth:
        return ApiError("IncompleteSignatureException", "Missing SignedHeaders or Signature")
    return None


@dataclass
class ScriptedFault:
    operation: str  # operation name or "*"
    error: str
    count: int = 1
    after: bool = False  # run the operation, then answer the error (response lost)


@dataclass
class Faults:
    """Seeded random faults plus a deterministic script, per service."""

    throttle_rate: float = 0.0
    internal_rate: float = 0.0
    operations: list[str] | None = None
    seed: int = 0
    script: list[ScriptedFault] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Faults:
        seed = int(data.get("seed", 0))
        script = [ScriptedFault(operation=s.get("operation", "*"), error=s["error"],
                                count=int(s.get("count", 1)), after=bool(s.get("after")))
                  for s in data.get("script", [])]
        return cls(throttle_rate=float(data.get("throttle_rate", 0.0)),
                   internal_rate=float(data.get("internal_rate", 0.0)),
                   operations=data.get("operations"), seed=seed, script=script,
                   rng=random.Random(seed))

    def to_json(self) -> dict[str, Any]:
        return {"throttle_rate": self.throttle_rate, "internal_rate": self.internal_rate,
                "operations": self.operations, "seed": self.seed,
                "script": [vars(s) for s in self.script]}

    def pick(self, op: str) -> tuple[str, bool] | None:
        """(error code, after) for this call, or None."""
        for entry in self.script:
            if entry.count > 0 and entry.operation in ("*", op):
                entry.count -= 1
                return entry.error, entry.after
        if self.operations is not None and op not in self.operations:
            return None
        if not (self.throttle_rate or self.internal_rate):
            return None
        draw = self.rng.random()
        if draw < self.throttle_rate:
            return "ThrottlingException", False
        if draw < self.throttle_rate + self.internal_rate:
            return "InternalServerException", False
        return None


class S3Access:
    """Blocking S3 calls against the configured endpoint; call via asyncio.to_thread."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        session = botocore.session.get_session()
        self.client = session.create_client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(connect_timeout=2, read_timeout=5,
                          retries={"max_attempts": 2, "mode": "standard"},
                          s3={"addressing_style": "path"}))

    def list_keys(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        keys: list[tuple[str, int]] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend((o["Key"], int(o["Size"])) for o in page.get("Contents", []))
        return sorted(keys)

    def get(self, bucket: str, key: str) -> bytes:
        body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """Object metadata, or None when the bucket or key does not exist."""
        try:
            return self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
                return None
            raise

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
