"""NDJSON records out of a list of payloads (length-prefixed frames, Kafka message values).

The payloads of one read or fetch are joined into one block and decoded in bulk
by `streamer.codec.decode_block`; a payload may hold several NDJSON lines.  Bad
lines are located back in their payload so the caller can report the stream
offset (socket) or the message offset (Kafka).
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import NamedTuple

from streamer.core.ndjson import BadLine, Decoded, decode_block


class LocatedBad(NamedTuple):
    index: int  # which payload
    position: int  # byte position of the bad line inside that payload
    bad: BadLine


def decode_payloads(payloads: list[bytes], max_line_bytes: int,
                    limit_name: str = "max_line_bytes") -> tuple[Decoded, list[LocatedBad]]:
    """Decode every payload; the returned `Decoded.bad` is empty, bad lines are
    returned located instead."""
    block = b"\n".join(payloads)
    decoded = decode_block(block, 0, max_line_bytes, limit_name)
    if not decoded.bad:
        return decoded, []
    starts = list(accumulate((len(p) + 1 for p in payloads), initial=0))
    located = []
    for bad in decoded.bad:
        index = bisect_right(starts, bad.offset) - 1
        located.append(LocatedBad(index, bad.offset - starts[index], bad))
    decoded.bad = []
    return decoded, located
