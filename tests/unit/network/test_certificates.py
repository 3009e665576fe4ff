"""Which failures are a certificate that did not verify, however wrapped (the errors
as aiohttp and botocore build them)."""

import asyncio
import logging
import ssl

import aiohttp
from aiohttp.client_reqrep import ConnectionKey
from botocore.exceptions import ConnectTimeoutError, SSLError

from streamer.network.certificates import (
    certificate_rejected,
    quiet_unretrieved_certificate_errors,
)

VERIFY = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                                         "verify failed: self-signed certificate")
KEY = ConnectionKey("localhost", 443, True, True, None, None, None, None)


def _raised_in(context: BaseException, exc: BaseException) -> BaseException:
    try:
        try:
            raise context
        except BaseException:
            raise exc  # noqa: B904 -- as aiobotocore raises it: the context kept
    except BaseException as raised:
        return raised


def test_a_certificate_is_found_under_every_wrapping() -> None:
    aiohttp_error = aiohttp.ClientConnectorCertificateError(KEY, VERIFY)
    assert certificate_rejected(VERIFY)
    assert certificate_rejected(aiohttp_error)
    assert certificate_rejected(SSLError(endpoint_url="https://localhost/", error=aiohttp_error))
    assert certificate_rejected(_raised_in(aiohttp_error, RuntimeError("load failed")))


def test_other_failures_are_not() -> None:
    handshake = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    assert not certificate_rejected(handshake)
    assert not certificate_rejected(SSLError(endpoint_url="https://h/", error=handshake))
    assert not certificate_rejected(ConnectTimeoutError(endpoint_url="https://h/"))
    assert not certificate_rejected(_raised_in(OSError("refused"), TimeoutError()))


def test_an_unretrieved_certificate_error_is_not_a_second_error_line(caplog) -> None:
    """The sink reported the certificate; a handshake cancelled meanwhile and holding
    the same error is DEBUG. Any other unretrieved error stays an ERROR."""
    loop = asyncio.new_event_loop()
    try:
        quiet_unretrieved_certificate_errors(loop)
        with caplog.at_level(logging.DEBUG):
            for exc in (ssl.SSLCertVerificationError(1, "self-signed certificate"),
                        ValueError("something else")):
                loop.call_exception_handler(
                    {"message": "Future exception was never retrieved", "exception": exc})
    finally:
        loop.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["Future exception was never retrieved"]
    assert "self-signed certificate" in caplog.text  # at DEBUG, not lost
