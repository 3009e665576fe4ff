"""Secrets masked in text: log lines, error messages, dead-letter reasons.

Two layers: the values of the secrets registered, and a pattern backstop for
credentials that look like one (`write_key=...`, `Authorization: TD1 ...`,
`X-Amz-Security-Token: ...`) whatever their value.  Plain text work, no
logging machinery: the log filter (log_redact.py) and the TD sink's error and
dead-letter path share it.

A registered value is found in every form a server or a library may echo it
in, each character independently: as is, URL-encoded (``%2F``, ``+`` for a
space, either hex case), JSON-escaped (``\\/``, ``\\"``, ``\\\\``, ``\\u00e9``,
surrogate pairs; escaped once or more).  A value cut short -- an error body
truncated by the client, a reason shortened for a log line -- is masked too:
any run of its first `MIN_PREFIX` or more characters, in any of those forms,
and a half-written escape right after such a run at the end of the text."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
MIN_PREFIX = 8  # a cut secret's first characters that are masked wherever they appear

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
# what is left of one escaped character when the text was cut in its middle
_HALF_ESCAPE = re.compile(r"(?:\\+(?:u[0-9a-fA-F]{0,3})?|%[0-9a-fA-F]?)\Z")
_JSON_SHORT = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r",
               "\t": "t"}


def _mask_named(match: re.Match) -> str:
    start = match.start()
    if match.group(2) == ": " and start and match.string[start - 1] == ".":
        # a config problem about a key path (`sinks.td.write_key: Input should be a
        # valid string`): its message never holds the value
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{MASK}"


def _mask_authorization(match: re.Match) -> str:
    return f"{match.group(1)}{match.group(2) or ''}{MASK}"


def _hex(digits: str) -> str:
    """`digits` in either case: '2f' -> '2[fF]'."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in digits)


def _char_forms(char: str) -> str:
    """A regex for one character of a secret in any of its echoed forms."""
    forms = [re.escape(char)]
    code = ord(char)
    units = ([code] if code < 0x10000 else
             [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)])
    forms.append("".join(r"\\+u" + _hex(f"{unit:04x}") for unit in units))  # \u00e9
    if char in _JSON_SHORT:
        forms.append(r"\\+" + re.escape(_JSON_SHORT[char]))  # \/  \"  \\  \n
    forms.append("".join("%" + _hex(f"{byte:02x}") for byte in char.encode()))  # %2F
    if char == " ":
        forms.append(r"\+")
    return "(?:" + "|".join(forms) + ")"


class _Secret:
    """One registered value: a regex for it whole, and its characters one by one
    for a cut copy."""

    __slots__ = ("chars", "head", "whole")

    def __init__(self, value: str) -> None:
        self.chars = [re.compile(_char_forms(c)) for c in value]
        self.whole = re.compile("".join(p.pattern for p in self.chars))
        self.head = re.compile("".join(p.pattern for p in self.chars[:MIN_PREFIX]))

    def mask(self, text: str) -> str:
        text = self.whole.sub(MASK, text)
        if len(self.chars) <= MIN_PREFIX:
            return text
        found = self.head.search(text)
        while found is not None:  # a cut copy: its head, then as many characters as match
            end, count = found.end(), MIN_PREFIX
            while count < len(self.chars):
                more = self.chars[count].match(text, end)
                if more is None:
                    break
                end, count = more.end(), count + 1
            half = _HALF_ESCAPE.match(text, end) if count < len(self.chars) else None
            if half is not None:
                end = half.end()
            text = text[:found.start()] + MASK + text[end:]
            found = self.head.search(text, found.start() + len(MASK))
        return text


class SecretMasker:
    """Replaces secrets with "***"."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: dict[str, _Secret] = {}
        self._ordered: list[_Secret] = []
        self.add(secrets)

    def add(self, values: Iterable[str]) -> None:
        """Register secret values (found in every form, see above); empty
        strings are ignored."""
        for value in values:
            if value and value not in self._secrets:
                self._secrets[value] = _Secret(value)
        ordered = sorted(self._secrets, key=len, reverse=True)  # longest first
        self._ordered = [self._secrets[value] for value in ordered]

    def mask(self, text: str) -> str:
        for secret in self._ordered:
            text = secret.mask(text)
        text = _AUTHORIZATION.sub(_mask_authorization, text)
        return _NAMED.sub(_mask_named, text)
