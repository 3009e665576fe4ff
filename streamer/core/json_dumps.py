"""`orjson.dumps` for every value a record may hold.

The sources take records nested up to 1023 levels (simdjson's and orjson.loads'
limit), but orjson writes at most 254 ("Recursion limit reached", a TypeError).
A deeper value is written here level by level until its parts are shallow enough
for orjson: the same bytes orjson would write, at a cost only such values pay.
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        kind = type(value)
        if kind is not dict and kind is not list:
            raise
    # a loop per level, not a comprehension: one Python frame per level keeps
    # 1023 levels under the interpreter's recursion limit
    parts: list[bytes] = []
    if kind is list:
        for item in value:
            parts.append(dumps(item))
        return b"[" + b",".join(parts) + b"]"
    for key, item in value.items():
        parts.append(orjson.dumps(key) + b":" + dumps(item))
    return b"{" + b",".join(parts) + b"}"
