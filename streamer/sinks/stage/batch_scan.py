"""Byte scans of a plain batch's NDJSON that let the native query do less: no
value is an object or an array (no rendering checks), no string is empty (cells
copied without NULLIF).  A scan may answer "maybe" where the answer is no (a
string holding the bytes it looks for): the query then does the work anyway.

Each scan is one Hyperscan pass over the bytes the query reads (0.7 ms for
20,000 365-byte records, measured 2026-12-04; counting `{` took 2.7-3.2 ms).
Without Hyperscan a nested value is found by counting `{`, and an empty string
is always assumed."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from streamer.core.lines import Lines

try:  # not installed where it has no wheel (Linux aarch64 before glibc 2.28)
    import hyperscan
except ImportError:
    hyperscan = None

Buffer = bytes | memoryview

# A top-level object or array opens right after its key's `:` and JSON
# whitespace (a line holds no LF), so the byte before it is one of `: \t\r`; a
# record's own `{` follows a line end.  Values below the top level are inside one.
NESTED_VALUE = rb"[: \t\r][\[{]"
# Inside a string a `"` is escaped, and after a closing quote comes `,` `:` `}`
# `]` or whitespace: two quotes in a row after a byte other than `\` are an empty
# string (a key or a value).  After a `\` they are an escaped quote that ends its
# string.  A record starts with `{` or whitespace, so no `""` starts a buffer.
EMPTY_STRING = rb'[^\\]""'
# The scan for an empty string costs about 0.1 ns a byte, the NULLIF it may save
# about 9 ns a cell (measured 2026-12-04, 20 columns): scanned only in batches of
# at most this many bytes a cell, where it costs well under what it may save
EMPTY_SCAN_MAX_CELL_BYTES = 64


@cache
def _database(pattern: bytes) -> Any:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=[pattern], ids=[0], flags=[hyperscan.HS_FLAG_SINGLEMATCH])
    return database


def _stop_at_first(*_match: Any) -> bool:
    return True


def _found(pattern: bytes, buffers: Sequence[Buffer]) -> bool:
    """Whether `pattern` matches in one of `buffers` (a scratch space per call:
    half a microsecond, and safe from any thread)."""
    database = _database(pattern)
    scratch = hyperscan.Scratch(database)
    for buffer in buffers:
        try:
            database.scan(buffer, match_event_handler=_stop_at_first, scratch=scratch)
        except hyperscan.ScanTerminated:
            return True
    return False


def may_nest_by_hyperscan(parts: Sequence[Lines], buffers: Sequence[Buffer]) -> bool:
    """Whether a value of the records in `buffers` (`parts`' NDJSON) may be an
    object or an array."""
    return _found(NESTED_VALUE, buffers)


def may_nest_by_count(parts: Sequence[Lines], buffers: Sequence[Buffer]) -> bool:
    """The same answer without Hyperscan: a `[`, or a `{` besides the one each
    record opens with."""
    return any(part.contains(b"[") or part.count_of(b"{") != part.count for part in parts)


def may_hold_empty_string_by_hyperscan(buffers: Sequence[Buffer]) -> bool:
    return _found(EMPTY_STRING, buffers)


def may_hold_empty_string_always(buffers: Sequence[Buffer]) -> bool:
    return True


may_nest = may_nest_by_hyperscan if hyperscan is not None else may_nest_by_count
may_hold_empty_string = (may_hold_empty_string_by_hyperscan if hyperscan is not None
                         else may_hold_empty_string_always)


def no_empty_string(parts: Sequence[Lines], buffers: Sequence[Buffer], columns: int) -> bool:
    """Whether the records (`parts`, their NDJSON in `buffers`) are proven to
    hold no empty string, where the scan pays for `columns` cells a record."""
    records = sum(part.count for part in parts)
    return (sum(part.nbytes for part in parts) <= EMPTY_SCAN_MAX_CELL_BYTES * records * columns
            and not may_hold_empty_string(buffers))
