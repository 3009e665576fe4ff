"""A logging filter that keeps secrets out of log lines.

Two layers: the exact values of the secrets the config holds (registered once
it is loaded), and a pattern backstop for credentials that look like one
(`write_key=...`, `Authorization: TD1 ...`, `X-Amz-Security-Token: ...`)
whatever their value.  Both are applied to the formatted message (the template
with its arguments), to the exception text and to the stack text."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"

# name [quote] (: or =) [quote] value -- in URLs, headers, reprs of dicts, log text
_NAMED = re.compile(
    r"(?i)\b(td_write_key|write_key|x-td-write-key|x-amz-security-token|x-amz-signature"
    r"|aws_secret_access_key|secret_access_key|aws_session_token|session_token"
    r"|sasl_plain_password|ssl_password|password)"
    r"""(['"]?\s*[:=]\s*['"]?)([^\s'",;&)}\]]+)""")
# Authorization: TD1 <key> / Bearer <token> / Basic <creds> / <token>
_AUTHORIZATION = re.compile(
    r"""(?i)\b(authorization['"]?\s*[:=]\s*['"]?)((?:TD1|Bearer|Basic|Token)\s+)?"""
    r"""([^\s'",;&)}\]]+)""")


def _mask_named(match: re.Match) -> str:
    return f"{match.group(1)}{match.group(2)}{MASK}"


def _mask_authorization(match: re.Match) -> str:
    return f"{match.group(1)}{match.group(2) or ''}{MASK}"


class Redactor(logging.Filter):
    """Replaces secrets with "***" in every record it sees (it never drops one).

    The record is rewritten in place (message rendered, arguments dropped,
    exception text cached), so every handler after this one sees it redacted."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._exact: re.Pattern[str] | None = None
        self._exception_formatter = logging.Formatter()

    def add_secrets(self, values: Iterable[str]) -> None:
        """Register secret values (and their URL-encoded forms, as they appear in
        query strings); empty strings are ignored."""
        for value in values:
            if value:
                self._secrets.update((value, quote(value), quote(value, safe="")))
        if self._secrets:
            ordered = sorted(self._secrets, key=len, reverse=True)  # longest first
            self._exact = re.compile("|".join(re.escape(v) for v in ordered))

    def redact(self, text: str) -> str:
        if self._exact is not None:
            text = self._exact.sub(MASK, text)
        text = _AUTHORIZATION.sub(_mask_authorization, text)
        return _NAMED.sub(_mask_named, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True
