"""A 2xx that is not TD's answer names the start of its body: a page that echoes the
request (a captive portal showing the URL asked for) must not carry the write key
into the message, not even a prefix cut at the preview's end."""

from __future__ import annotations

import pytest

from streamer.sinks.td.http_client import NotTdAnswer

KEY = "12345/0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("echo", [
    f"<p>/postback/v3/event/db/t?td_write_key={KEY.replace('/', '%2F')}</p>",
    f"<p>Authorization: TD1 {KEY}</p>",
    f"<html><body>you asked for /x?td_write_key={KEY}&more</body></html>",
])
def test_an_echoed_key_is_not_in_the_message(echo: str) -> None:
    message = str(NotTdAnswer(200, "text/html", echo.encode()))
    assert "(hidden)" in message
    for cut in range(6, len(KEY) + 1):  # any prefix of the key past its account id
        assert KEY[:cut] not in message and KEY.replace("/", "%2F")[:cut] not in message
