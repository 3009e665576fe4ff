"""Dead-letter entries for the records a batch's encoder rejected (values the column
mapping could not convert), each with its piece's origin."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import Any

from streamer.core import deadletter
from streamer.core.batch import Origin
from streamer.core.deadletter import BadInput
from streamer.core.lines import Lines


def rejected_entries(sink: str, segments: list[Lines], origins: list[Origin],
                     rejected: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """`rejected`: (index of the record among all the segments' records, reason)."""
    starts = list(accumulate((s.count for s in segments), initial=0))
    entries = []
    for index, reason in rejected:
        which = bisect_right(starts, index) - 1
        origin = origins[which]
        raw = segments[which].raws[index - starts[which]]
        entries.append(deadletter.entry(sink, origin.stream, BadInput(origin.offset, reason, raw),
                                        source=origin.source))
    return entries
