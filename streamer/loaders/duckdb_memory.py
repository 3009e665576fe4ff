"""How long a row DuckDB must read back from a gzip or zstd stage file, and whether its
`memory_limit` can hold the buffers that takes.

An uncompressed stage file is read with a 1 GiB row limit (formats.LONGEST_ROW: it
costs nothing until a row needs it).  A compressed one is read through buffers
allocated at once from the row limit, so that limit is the sink's real need: the
longest record its sources take (`max_line_bytes`, a socket's `max_frame_bytes`) as a
row, plus the row's overhead.  Below DuckDB's own defaults (a 2,000,000-byte CSV line
in 32 MB buffers, a 16 MiB JSON object) nothing changes.  Measured on DuckDB 2.0 for
one gzip file: read_csv with `max_line_size` = `buffer_size` = N needs about 2 N of
`memory_limit` (16 x `max_line_size` each when `buffer_size` is not set), read_json
with `maximum_object_size` = N about 4 N; both read a 40 MB record whole.
"""

from __future__ import annotations

import os
import re
from typing import Any

# DuckDB's defaults for a compressed file's reader
CSV_LINE = 2_000_000
CSV_BUFFER = 16 * CSV_LINE
JSON_OBJECT = 16 << 20
# a CSV or NDJSON row is the record's fields (JSON escapes decoded, so never longer
# than they were) quoted and separated, a nested value re-encoded (a number may grow
# by a byte: 1e21 -> 1e+21), a mapped timestamp formatted: a quarter more, 64 bytes a column
PER_COLUMN = 64
NEED_PER_BYTE = 4  # of memory_limit per byte of the read limit (measured: 2-4)
DEFAULT_SHARE = 0.8  # DuckDB's memory_limit when none is set: 80% of the RAM
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B|bytes)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_size(text: str) -> int | None:
    """DuckDB's memory_limit syntax ('4GB', '512MiB', '1.5 GB') in bytes; None if not."""
    match = _SIZE.match(text)
    if match is None:
        return None
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()])


def duckdb_default_memory() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * DEFAULT_SHARE)


def longest_row(longest_record: int, columns: int) -> int:
    """The longest row a record its sources take can make in a stage file."""
    return longest_record + longest_record // 4 + PER_COLUMN * columns


def compressed_read(fmt: str, row: int) -> tuple[str, int]:
    """read_csv / read_json options for compressed files whose rows go up to `row`
    bytes ('' when DuckDB's defaults take them), and the memory_limit that needs."""
    if fmt == "csv" and row > CSV_LINE:
        buffer = max(row, CSV_BUFFER)
        return f"max_line_size = {row}, buffer_size = {buffer}", NEED_PER_BYTE * buffer
    if fmt == "ndjson" and row > JSON_OBJECT:
        return f"maximum_object_size = {row}", NEED_PER_BYTE * row
    return "", 0


def memory_problems(cfg: Any) -> list[str]:
    """A DuckDB load of gzip/zstd files whose memory_limit cannot hold the buffers for
    the longest record of its sink's sources: one line naming both keys."""
    problems = []
    for name, sink in cfg.sinks.items():
        load = getattr(sink, "load", None)
        if getattr(load, "type", None) != "duckdb" or sink.format == "parquet" or (
                sink.compression or "none") == "none":
            continue
        source, longest = cfg.longest_input(name)
        if not source:
            continue
        _, need = compressed_read(sink.format, longest_row(longest, len(sink.columns)))
        limit = parse_size(load.memory_limit) if load.memory_limit else None
        available = limit if limit is not None else duckdb_default_memory()
        if need > available:
            key = ("max_frame_bytes" if cfg.sources[source].type == "socket"
                   else "max_line_bytes")
            have = (f"sinks.{name}.load.memory_limit = {load.memory_limit!r}" if limit
                    is not None else f"sinks.{name}.load.memory_limit (unset: DuckDB takes "
                    f"80% of the RAM, {available:,} bytes)")
            problems.append(
                f"{have} cannot hold the {need:,} bytes DuckDB needs to read a "
                f"{sink.compression} {sink.format} stage file with rows of "
                f"sources.{source}.{key} = {longest:,}: raise the first, lower the second, "
                "or stage uncompressed or Parquet files")
    return problems
