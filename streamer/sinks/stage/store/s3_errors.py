"""Which S3 answers the stage retries, slows down for, or stops on, and the
Retry that applies them (store/retry.py)."""

from __future__ import annotations

import asyncio

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
