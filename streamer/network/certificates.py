"""A certificate that does not verify: the one network failure no retry mends.

A one-shot run gives up on it at once (runtime/give_up.py, `SinkStats.hopeless`); a
daemon retries it like any other failure (an operator may install the CA meanwhile).
The error arrives wrapped: aiohttp's ClientConnectorCertificateError (itself an
SSLCertVerificationError), inside botocore's SSLError (its `error`, and the context
it was raised in) for S3, Timestream and Data Exchange.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

log = logging.getLogger("streamer.network")


def certificate_rejected(exc: BaseException) -> bool:
    """Whether `exc`, or an error it wraps, is a certificate that did not verify."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        error = pending.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        if isinstance(error, ssl.SSLCertVerificationError):
            return True
        seen.add(id(error))
        wrapped = getattr(error, "kwargs", None)  # botocore errors keep their causes here
        pending += [error.__cause__, error.__context__,
                    wrapped.get("error") if isinstance(wrapped, dict) else None]
    return False


def quiet_unretrieved_certificate_errors(loop: asyncio.AbstractEventLoop) -> None:
    """A connection cancelled mid-handshake (a one-shot run giving up on the first
    certificate that did not verify, a stop) leaves the loop's handshake future holding
    the same error, logged at garbage collection as an ERROR "Future exception was never
    retrieved": a second ERROR line for a failure the sink already reported. Logged at
    DEBUG instead; every other unhandled error goes to the default handler."""
    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if (context.get("message") == "Future exception was never retrieved"
                and exc is not None and certificate_rejected(exc)):
            log.debug("a handshake cancelled meanwhile also failed: %s", exc)
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
