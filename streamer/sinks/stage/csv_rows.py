"""Two CSV outputs of one batch put back together in the records' order: the
rows the mapping's typed query wrote and those the full query wrote for the
records it left out."""

from __future__ import annotations

from collections.abc import Sequence

ROW_END = b"\r\n"  # csv_native's NEW_LINE


def split_rows(csv: bytes, count: int) -> list[bytes] | None:
    """The `count` rows of `csv` (without their ends), or None when a cell holds
    a line end too: then only a CSV parser could tell the rows apart."""
    # every row ends with ROW_END: exactly `count` of them are the rows' ends
    if csv.count(ROW_END) != count:
        return None
    rows = csv.split(ROW_END)
    rows.pop()  # after the last row's end
    return rows


def interleave(kept: list[bytes], placed: Sequence[bytes],
               positions: Sequence[int]) -> bytes:
    """`kept` in order with each `placed[i]` at `positions[i]` (ascending, in the
    result), as CSV bytes."""
    out: list[bytes] = []
    taken = 0
    for position, row in zip(positions, placed, strict=True):
        before = position - len(out)  # kept rows that come first
        out += kept[taken:taken + before]
        taken += before
        out.append(row)
    out += kept[taken:]
    return ROW_END.join(out) + ROW_END if out else b""
