"""Text JSON can hold, from a str that may hold surrogate escapes: a file name
whose bytes are not UTF-8 (Python keeps such bytes as U+DC80..U+DCFF), which
orjson refuses.  Used only after orjson refused a value: no cost otherwise."""

from __future__ import annotations

from typing import Any


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
