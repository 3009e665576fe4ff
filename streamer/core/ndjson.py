"""NDJSON checking: which lines of a block are records, and why the others are not.

Every record read passes through here, so it is written for speed:
whole-block checks run in C (simdjson, Hyperscan, substring searches) and decide
whether the per-line Python work can be skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
import simdjson

from streamer.core.deadletter import BadInput
from streamer.core.lines import Lines

try:  # not installed where it has no wheel (Linux aarch64 before glibc 2.28)
    import hyperscan
except ImportError:
    hyperscan = None

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UTF8_BOM = b"\xef\xbb\xbf"
_DIGITS_AS_ZEROS = bytes(ord("0") if ord("0") <= byte <= ord("9") else ord(".")
                         for byte in range(256))
_NINETEEN_ZEROS = b"0" * 19


@cache
def _digit_run_pattern() -> Any:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=[rb"[0-9]{19}"], ids=[0],
                     flags=[hyperscan.HS_FLAG_SINGLEMATCH])
    return database


@cache
def _digit_runs_pattern() -> Any:
    """Every end of 19 digits in a row: a run of n digits ends n - 18 of them."""
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=[rb"[0-9]{19}"], ids=[0], flags=[0])
    return database


def _stop_at_first(*_match: Any) -> bool:
    return True


def long_digit_run_by_hyperscan(data: bytes) -> bool:
    """Hyperscan scans a block 2.4 times faster than `bytes.translate` plus a
    substring search; a scratch space per call (half a microsecond) keeps it
    safe from any thread."""
    database = _digit_run_pattern()
    try:
        database.scan(data, match_event_handler=_stop_at_first,
                      scratch=hyperscan.Scratch(database))
    except hyperscan.ScanTerminated:
        return True
    return False


def long_digit_run_by_translate(data: bytes) -> bool:
    """The same answer without Hyperscan: every digit made "0", then a substring search."""
    return _NINETEEN_ZEROS in data.translate(_DIGITS_AS_ZEROS)


#: matches of a block past which its lines are scanned one by one instead (a block
#: of long digit runs, each end of 19 digits one call back)
MAX_DIGIT_RUN_ENDS = 4096


def long_digit_run_lines_by_hyperscan(block: bytes) -> list[int]:
    """The indexes of the lines of `block` (split at b"\\n") that hold a run of 19
    digits: one Hyperscan scan of the block (a block of long records, whose hex ids
    hold such a run in every other 1 MiB, cost a scan and a scratch space per line:
    2.8 ms a block, now 0.35)."""
    ends: list[int] = []

    def found(_id: int, _start: int, end: int, _flags: int, _context: Any) -> bool:
        ends.append(end)
        return len(ends) > MAX_DIGIT_RUN_ENDS

    database = _digit_runs_pattern()
    try:
        database.scan(block, match_event_handler=found, scratch=hyperscan.Scratch(database))
    except hyperscan.ScanTerminated:
        return [index for index, line in enumerate(block.split(b"\n"))
                if long_digit_run_by_hyperscan(line)]
    return _line_indexes(block, ends)


def long_digit_run_lines_by_translate(block: bytes) -> list[int]:
    """The same answer without Hyperscan: every digit made "0", then substring searches."""
    zeros = block.translate(_DIGITS_AS_ZEROS)
    ends, at = [], zeros.find(_NINETEEN_ZEROS)
    while at >= 0:
        ends.append(at + len(_NINETEEN_ZEROS))
        newline = block.find(b"\n", at)  # the next line: one run is enough for a line
        at = zeros.find(_NINETEEN_ZEROS, newline) if newline >= 0 else -1
    return _line_indexes(block, ends)


def _line_indexes(block: bytes, ends: list[int]) -> list[int]:
    """The lines the (increasing) offsets `ends` fall in, each once; the newlines
    before them are counted in one pass over the block."""
    indexes: list[int] = []
    index = previous = 0
    for end in ends:
        index += block.count(b"\n", previous, end)
        previous = end
        if not indexes or indexes[-1] != index:
            indexes.append(index)
    return indexes


# whether `data` holds 19 digits in a row (an integer past 64 bits needs them), and
# which lines of a block do
has_long_digit_run = (long_digit_run_by_hyperscan if hyperscan is not None
                      else long_digit_run_by_translate)
long_digit_run_lines = (long_digit_run_lines_by_hyperscan if hyperscan is not None
                        else long_digit_run_lines_by_translate)


def oversize_reason(limit: int, limit_name: str, size: int | None = None) -> str:
    """Why a line over the limit was dead-lettered; `size` is None when the line
    was skipped as it arrived, never held whole."""
    line = "line" if size is None else f"line of {size} bytes"
    return f"{line} exceeds {limit_name} ({limit}); raw holds its first {limit} bytes"


def nul_hole_reason(length: int, cut: int = 0) -> str:
    """A run of NUL bytes: a hole a crash left (the file's size was written, its data
    not), reported once, without its NULs.  `cut`: the bytes of the line it cut short
    (delayed allocation zeroes from a block boundary: a hole may start mid-line),
    which the dead letter's raw holds."""
    if cut:
        return (f"a line of {cut} bytes cut short by a hole of {length} NUL bytes (a "
                f"crash before the data was written?); raw holds the line, the hole skipped")
    return f"a hole of {length} NUL bytes (a crash before the data was written?); skipped"


@dataclass(slots=True)
class Decoded:
    """The valid records of a block as the lines they were, and its bad lines.
    `whole`: the records are the entire block, every line ended by b"\n"."""

    raws: list[bytes]
    nbytes: int
    bad: list[BadInput]
    block: bytes = b""
    whole: bool = False
    longest: int = 0

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(map(orjson.loads, self.raws))

    def lines(self, block_ok: bool = True) -> Lines:
        """What a piece keeps: the block itself when it is whole and wanted."""
        if self.whole and block_ok:
            return Lines.of_block(self.block, len(self.raws), self.longest)
        # `longest` counted the bad lines too: only an upper bound without them
        return Lines.of(self.raws, self.nbytes, None if self.bad else self.longest)


class _IntOutOfRange(ValueError):
    pass


def _checked_int(text: str) -> int:
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise _IntOutOfRange(f"integer {text[:40]} is outside the signed 64-bit range")
    return value


def _huge_int_reason(line: bytes) -> str | None:
    """orjson turns integers past 64 bits into floats and loses digits; catch them."""
    try:
        json.loads(line, parse_int=_checked_int)
    except _IntOutOfRange as exc:
        return str(exc)
    except ValueError:
        return None
    return None


class _Offsets:
    """Stream offsets of a block's lines, computed only for the bad ones,
    incrementally from the last one asked for."""

    def __init__(self, lines: list[bytes], base_offset: int) -> None:
        self._lines = lines
        self._base = base_offset
        self._index, self._offset = 0, base_offset

    def of(self, index: int) -> int:
        if index < self._index:
            self._index, self._offset = 0, self._base
        self._offset += (sum(map(len, self._lines[self._index:index]))
                         + (index - self._index))
        self._index = index
        return self._offset


def decode_block(block: bytes, base_offset: int, max_line_bytes: int,
                 limit_name: str = "max_line_bytes") -> Decoded:
    """Check complete NDJSON lines.

    `block` holds whole lines, each ended by b"\\n" except perhaps the last one
    (the end of a finite input); `base_offset` is the stream offset of its first
    byte.  Blank lines are skipped; every other line is either a record (a JSON
    object that `orjson.loads` takes exactly) or a `BadInput` with its own offset.
    A line's CR before its LF is kept (JSON whitespace) but not counted against
    `max_line_bytes`; `limit_name` is the setting a reason names.
    """
    if not block:
        return Decoded([], 0, [])
    lines = block.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    offsets = _Offsets(lines, base_offset)
    bad: list[BadInput] = []
    longest = max(map(len, lines), default=0)
    # the common case, a block of good records, is checked entirely in C
    whole = 0 < longest <= max_line_bytes and _no_bom(block) and _all_objects(lines)
    moved: dict[int, tuple[int, bytes]] = {}
    raws = (lines if whole
            else _check_each(lines, max_line_bytes, limit_name, offsets, bad, moved,
                             b"\0" in block))
    # most blocks hold no such run, and the first scan (it stops at the first run)
    # is the fastest way to say so
    if has_long_digit_run(block) and (run_lines := long_digit_run_lines(block)):
        raws = _drop_huge_ints(raws, lines, run_lines, bad, offsets, moved)
        whole = whole and not bad
    whole = whole and block.endswith(b"\n")
    nbytes = len(block) - len(lines) if whole else sum(map(len, raws))
    return Decoded(raws, nbytes, bad, block, whole, longest)


def _no_bom(block: bytes) -> bool:
    # a substring search of a whole block costs a quarter of checking its JSON;
    # a search for one byte is a memchr
    return UTF8_BOM[:1] not in block or UTF8_BOM not in block


def _all_objects(lines: list[bytes]) -> bool:
    """Whether every line is a JSON object orjson takes, checked by simdjson
    without building Python objects (orjson's dicts, created and freed, cost
    several times more).  simdjson is the stricter of the two (UTF-8, numbers
    past a double, depth) except that it skips a leading BOM, which orjson
    refuses (the caller sends such blocks line by line); anything simdjson
    refuses gets orjson's verdict."""
    parse = simdjson.Parser().parse  # each document is freed before the next parse
    try:
        return set(map(type, map(parse, lines))) == {simdjson.Object}
    except (ValueError, RuntimeError):
        return False


def _check_each(lines: list[bytes], max_line_bytes: int, limit_name: str, offsets: _Offsets,
                bad: list[BadInput], moved: dict[int, tuple[int, bytes]],
                nuls: bool) -> list[bytes]:
    """Line by line, with orjson: the verdict on every line and the reason for
    each bad one.  A run of NUL bytes in a line is a hole (a crash left it) and the
    line after it, whose newline fell in the hole: the hole and the part of a line
    before it are one bad input (raw: that part, not the NULs), the rest is checked
    as a line of its own (`moved` gets its offset, by `id`)."""
    raws: list[bytes] = []
    loads = orjson.loads
    for index, line in enumerate(lines):
        if not line:
            continue
        offset = -1
        while nuls and (nul := line.find(b"\0")) >= 0:  # a hole, then perhaps a record
            offset = _at(offset, offsets, index)
            rest = line[nul:].lstrip(b"\0")
            hole = len(line) - nul - len(rest)
            if nul > max_line_bytes:  # over the limit before the hole: as the splitter
                bad.append(BadInput(offset, oversize_reason(max_line_bytes, limit_name, nul),
                                    line[:max_line_bytes]))
                bad.append(BadInput(offset + nul, nul_hole_reason(hole), b""))
            else:
                bad.append(BadInput(offset, nul_hole_reason(hole, nul), line[:nul]))
            offset += nul + hole
            line = rest
        if offset >= 0:
            if not line:
                continue
            moved[id(line)] = (offset, line)
        if len(line) > max_line_bytes and (
                size := len(line) - line.endswith(b"\r")) > max_line_bytes:
            bad.append(BadInput(_at(offset, offsets, index),
                                oversize_reason(max_line_bytes, limit_name, size),
                                line[:max_line_bytes]))
            continue
        try:
            record = loads(line)
        except orjson.JSONDecodeError as exc:
            if line.isspace():
                continue
            bad.append(BadInput(_at(offset, offsets, index),
                                f"invalid JSON: {_decode_error(line, exc)}", line))
            continue
        except RecursionError:
            bad.append(BadInput(_at(offset, offsets, index), "invalid JSON: nesting too deep",
                                line))
            continue
        if type(record) is not dict:
            bad.append(BadInput(_at(offset, offsets, index),
                                f"not a JSON object: {type(record).__name__}", line))
            continue
        raws.append(line)
    return raws


def _at(offset: int, offsets: _Offsets, index: int) -> int:
    """A line's stream offset: `offset` when a NUL hole before it moved it."""
    return offset if offset >= 0 else offsets.of(index)


def _decode_error(line: bytes, exc: orjson.JSONDecodeError) -> str:
    # orjson reports invalid UTF-8 bytes as "surrogates not allowed"
    try:
        line.decode()
    except UnicodeDecodeError as bad_bytes:
        return f"invalid UTF-8 at byte {bad_bytes.start} of the line"
    return str(exc)




def _drop_huge_ints(raws: list[bytes], lines: list[bytes], run_lines: list[int],
                    bad: list[BadInput], offsets: _Offsets,
                    moved: dict[int, tuple[int, bytes]]) -> list[bytes]:
    """`run_lines`: the indexes of the lines holding a run of 19 digits; only those
    are parsed again (and a line a NUL hole moved, whose rest is a new object)."""
    if raws is lines:  # a whole block: the records are its lines
        suspects = [lines[index] for index in run_lines]
    else:
        with_run = {id(lines[index]) for index in run_lines}
        suspects = [raw for raw in raws if id(raw) in with_run or id(raw) in moved]
    rejected = {id(raw): reason for raw in suspects
                if (reason := _huge_int_reason(raw)) is not None}
    if not rejected:
        return raws
    for index, line in enumerate(lines):
        if id(line) in rejected:
            bad.append(BadInput(offsets.of(index), rejected[id(line)], line))
    for key, (offset, line) in moved.items():  # lines after a NUL hole
        if key in rejected:
            bad.append(BadInput(offset, rejected[key], line))
    bad.sort(key=lambda b: b.offset)
    return [raw for raw in raws if id(raw) not in rejected]




