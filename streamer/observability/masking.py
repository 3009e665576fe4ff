"""Secrets masked in text: log lines, error messages, dead-letter reasons.

Two layers: the exact values of the secrets registered (with their URL-encoded
forms, as they appear in query strings), and a pattern backstop for
credentials that look like one (`write_key=...`, `Authorization: TD1 ...`,
`X-Amz-Security-Token: ...`) whatever their value.  Plain text work, no
logging machinery: the log filter (log_redact.py) and the TD sink's error and
dead-letter path share it."""

from __future__ import annotations

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


class SecretMasker:
    """Replaces secrets with "***"."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._exact: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, values: Iterable[str]) -> None:
        """Register secret values and their URL-encoded forms; empty strings are
        ignored."""
        for value in values:
            if value:
                self._secrets.update((value, quote(value), quote(value, safe="")))
        if self._secrets:
            ordered = sorted(self._secrets, key=len, reverse=True)  # longest first
            self._exact = re.compile("|".join(re.escape(v) for v in ordered))

    def mask(self, text: str) -> str:
        if self._exact is not None:
            text = self._exact.sub(MASK, text)
        text = _AUTHORIZATION.sub(_mask_authorization, text)
        return _NAMED.sub(_mask_named, text)
