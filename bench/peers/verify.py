"""Checks of a peer's output against the bench input, outside the measurement, so that
a row cannot be fast and wrong: the record count is exact, and a sample of records is
compared value by value."""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from bench.harness import BenchError
from bench.peers.fluent_bit import TimeFrom, template_line

__all__ = [
    "check_sampled_records",
    "check_template_lines",
    "records_of_bodies",
    "same_record",
    "sample_positions",
]

#: A value found in more input lines than this does not identify a record.
_MAX_CANDIDATES = 64


def sample_positions(n: int, count: int = 50, head: int = 101) -> list[int]:
    """Line positions to compare in an output of ``n`` lines: the first ``head`` (the
    bench input's records that need CSV quoting are every 50th from 0), ``count``
    spread over the rest, and the last."""
    if n <= 0:
        return []
    step = max(1, n // count)
    return sorted({*range(min(head, n)), *range(0, n, step), n - 1})


def check_template_lines(output: Path, source: Path, columns: Sequence[str],
                         time_from: TimeFrom | None, expected: int) -> None:
    """``output`` holds exactly ``expected`` lines, and the sampled ones are the
    template lines of the ``source`` records in the same order."""
    positions = set(sample_positions(expected))
    lines = 0
    with open(output, "rb") as out, open(source, "rb") as src:
        for index, (got, line) in enumerate(zip(out, src, strict=False)):
            lines += 1
            if index in positions:
                want = template_line(orjson.loads(line), columns, time_from)
                if got.rstrip(b"\n").decode() != want:
                    raise BenchError(f"{output} line {index + 1}: {got!r}, expected "
                                     f"{want!r} (from {source} line {index + 1})")
        lines += sum(1 for _ in out)
    if lines != expected:
        raise BenchError(f"{output}: {lines} lines, expected {expected}")


def records_of_bodies(sample: bytes) -> list[dict[str, Any]]:
    """The records of sampled request bodies, one a line: a JSON-lines record or a
    TD ingest body (``{"events": [...]}``)."""
    records: list[dict[str, Any]] = []
    for line in sample.splitlines():
        if not line.strip():
            continue
        value = orjson.loads(line)
        if isinstance(value, dict) and isinstance(value.get("events"), list):
            records.extend(value["events"])
        else:
            records.append(value)
    return records


def same_record(a: Any, b: Any) -> bool:
    """Equal values, floats within a relative 1e-12 (a peer may print them with
    fewer digits than it takes to read them back exactly)."""
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, int | float) and isinstance(b, int | float)
                and not isinstance(a, bool) and not isinstance(b, bool)
                and math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_record(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_record, a, b))
    return type(a) is type(b) and a == b


def check_sampled_records(records: Sequence[Mapping[str, Any]], source: Path,
                          count: int = 12) -> int:
    """Each of ``count`` records spread over ``records`` is a record of ``source``
    (found by one of its string values, longest first); return how many were
    checked.  Raises ``BenchError`` when none is sampled or one is not found."""
    if not records:
        raise BenchError("no records sampled from the output")
    step = max(1, len(records) // count)
    chosen = list(records[::step])[:count]
    with open(source, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for record in chosen:
            if not _found(mm, record):
                raise BenchError(f"record not in the input {source}: {dict(record)!r}")
    return len(chosen)


def _found(mm: mmap.mmap, record: Mapping[str, Any]) -> bool:
    strings = sorted((v for v in record.values() if isinstance(v, str) and v),
                     key=len, reverse=True)
    for value in strings:
        needle = orjson.dumps(value)
        lines = list(islice(_lines_with(mm, needle), _MAX_CANDIDATES + 1))
        if len(lines) <= _MAX_CANDIDATES:
            return any(same_record(orjson.loads(line), dict(record)) for line in lines)
    raise BenchError(f"no value identifies the record {dict(record)!r}")


def _lines_with(mm: mmap.mmap, needle: bytes) -> Iterator[bytes]:
    position = mm.find(needle)
    while position >= 0:
        start = mm.rfind(b"\n", 0, position) + 1
        end = mm.find(b"\n", position)
        end = len(mm) if end < 0 else end
        yield mm[start:end]
        position = mm.find(needle, end)
