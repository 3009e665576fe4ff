"""Which S3 answers the stage retries, slows down for, or stops on, and the
Retry that applies them (store/retry.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

from streamer.aws.clients import error_code, error_reason, transient_errors
from streamer.observability.metrics import SinkStats
from streamer.sinks.stage.store.retry import Retry

GONE_UPLOAD = ("NoSuchUpload",)
# answers retrying does not change: the bucket, the credentials or a policy need an operator
# (ExpiredToken, InvalidToken: temporary credentials that expired or a session token S3
# does not take; the same credentials are sent again, so retrying cannot mend them)
REFUSED = frozenset({"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId",
                     "SignatureDoesNotMatch", "AllAccessDisabled", "InvalidBucketName",
                     "AccountProblem", "ExpiredToken", "InvalidToken"})
# S3 (or an S3-like store) asking for fewer requests
SLOW_DOWN = frozenset({"SlowDown", "ServiceUnavailable", "RequestLimitExceeded", "Throttling",
                       "ThrottlingException", "TooManyRequestsException"})


class NotS3Answer(ConnectionError):
    """A 2xx without what S3 always answers (a PutObject's ETag, a multipart upload's
    UploadId, ...): a captive portal's or a proxy's page, a body cut short.  Nothing
    says the request reached S3: retried like a connection error."""


def answer_with(operation: str, call: Callable[[], Awaitable[Any]],
                *fields: str) -> Callable[[], Awaitable[dict[str, Any]]]:
    """`call`, whose answer must hold `fields` (else NotS3Answer)."""
    async def checked() -> dict[str, Any]:
        answer = await call()
        missing = [name for name in fields if not answer.get(name)]
        if missing:
            status = (answer.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            raise NotS3Answer(f"HTTP {status} to {operation} that is not S3's answer (no "
                              f"{', '.join(missing)}); a proxy or a captive portal in the way?")
        return answer
    return checked


def slowed_down(exc: BaseException) -> bool:
    """A 503 SlowDown (429, a throttling code) or no answer in time."""
    if isinstance(exc, (asyncio.TimeoutError, ReadTimeoutError, ConnectTimeoutError)):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status in (429, 503) or error_code(exc) in SLOW_DOWN
    return False


def refused(exc: BaseException) -> bool:
    return error_code(exc) in REFUSED


def s3_retry(stats: SinkStats, sink: str, timeout_s: float, finite: bool) -> Retry:
    """`finite`: a one-shot run, which a refusal (`REFUSED`) stops."""
    return Retry(stats, sink, transient_errors, reason_of=error_reason,
                 fatal=lambda exc: error_code(exc) in GONE_UPLOAD, timeout_s=timeout_s,
                 overloaded=slowed_down, refused=refused, stop_when_refused=finite)
