"""Text JSON can hold, from a str that may hold surrogate escapes: a file name
whose bytes are not UTF-8 (Python keeps such bytes as U+DC80..U+DCFF), which
orjson refuses.  Used only after orjson refused a value: no cost otherwise.

And text a text log line can hold: a name with a newline, a carriage return or
a terminal escape sequence would split the line (or rewrite it on a terminal),
so an attacker-chosen file name could forge a log line; `escape_controls`
writes such characters as `\\n`, `\\r`, `\\xNN`, `\\uNNNN`."""

from __future__ import annotations

import re
from typing import Any

# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with its control characters escaped (the text unchanged when it has none)."""
    return _CONTROLS.sub(_escape, text) if _CONTROLS.search(text) else text


def printable(text: str) -> str:
    """`text` with each byte that is not UTF-8 as `\\xNN` (other lone surrogates
    as `\\udNNN`)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return raw.decode("utf-8", "backslashreplace")


def printable_values(item: dict[str, Any]) -> dict[str, Any]:
    """`item` with its str values made printable."""
    return {key: printable(value) if isinstance(value, str) else value
            for key, value in item.items()}
