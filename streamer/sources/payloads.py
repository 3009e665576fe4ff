"""NDJSON records out of a list of payloads (length-prefixed frames, Kafka message values).

The payloads of one read or fetch are joined into one block, each ended by a
newline, and decoded in bulk by `decode_block`; a payload may hold several NDJSON
lines.  A bad line is located back in its payload: its `offset` becomes the
payload's (the frame's stream offset, the message offset) and its byte position
inside the payload goes to `payload_position`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate

from streamer.core.ndjson import Decoded, decode_block


def decode_payloads(payloads: list[bytes], offset_of: Callable[[int], int],
                    max_line_bytes: int, limit_name: str = "max_line_bytes") -> Decoded:
    """Decode every payload; `offset_of(i)` is where payload i starts in its origin
    (asked only for payloads with a bad line: no work per payload otherwise)."""
    # every payload ended by a newline: a block of good records stays one block
    # (core/lines.py), which the stage sink hands DuckDB as it is
    decoded = decode_block(b"\n".join([*payloads, b""]), 0, max_line_bytes, limit_name)
    if decoded.bad:
        starts = list(accumulate((len(p) + 1 for p in payloads), initial=0))
        for bad in decoded.bad:
            index = bisect_right(starts, bad.offset) - 1
            bad.offset, bad.payload_position = offset_of(index), bad.offset - starts[index]
    return decoded
