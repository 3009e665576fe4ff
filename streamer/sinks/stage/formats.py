"""What a stage file's format and compression mean: its name's suffix, its
content type, the whole-file compression of the text formats (CSV, NDJSON),
Parquet's column codec, and how DuckDB reads such files back.

CSV and NDJSON files are compressed as one stream per file (gzip: one member,
zstd: one frame), whichever encoder wrote their bytes.  Parquet is compressed
inside the file, per column chunk, so its files carry no outer suffix.
"""

from __future__ import annotations

import zlib
from typing import Any, Literal, Protocol

Format = Literal["csv", "ndjson", "parquet"]
Compression = Literal["none", "gzip", "zstd", "snappy"]

FORMATS: tuple[str, ...] = ("csv", "ndjson", "parquet")
TEXT_COMPRESSIONS = ("none", "gzip", "zstd")
PARQUET_CODECS = ("none", "snappy", "gzip", "zstd")
# The longest row DuckDB reads back from an uncompressed stage file or a batch's CSV
# cells.  Its own defaults (a 2 MB CSV line, a JSON object of 16-32 MB) are far below
# what a source takes with `max_line_bytes` raised: a longer row failed its batch or
# was a rejected row, and a CSV line past DuckDB's 32 MB buffer was no row at all,
# without an error.  Over an uncompressed file the limit costs nothing until a row
# needs it (measured: time and memory of a 400,000-row read the same); a gzip or zstd
# file is read through buffers of that size, allocated at once (16 times the line
# limit by default: 16 GiB here), so those are read with the sink's own need
# (loaders/duckdb_memory.py).
LONGEST_ROW = 1 << 30
PARQUET_DEFAULT_CODEC = "snappy"  # DuckDB's and Spark's default: every reader has it
_OUTER_SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}
_CONTENT_TYPE = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson",
                 "parquet": "application/vnd.apache.parquet"}
_COMPRESSED_TYPE = {"gzip": "application/gzip", "zstd": "application/zstd"}


def compression_of(fmt: str, compression: str | None) -> str:
    """The compression a file gets: the configured one, or the format's default."""
    if compression is not None:
        return compression
    return PARQUET_DEFAULT_CODEC if fmt == "parquet" else "none"


def compression_problem(fmt: str, compression: str | None) -> str | None:
    if compression is None:
        return None
    allowed = PARQUET_CODECS if fmt == "parquet" else TEXT_COMPRESSIONS
    if compression not in allowed:
        return (f"compression: {compression!r} is not available for format = "
                f"\"{fmt}\" (one of {', '.join(allowed)})")
    return None


def stream_compression(fmt: str, compression: str | None) -> str:
    """The whole-file compression the store applies ("none" for Parquet)."""
    return "none" if fmt == "parquet" else compression_of(fmt, compression)


def suffix(fmt: str, compression: str | None) -> str:
    return f".{fmt}" + _OUTER_SUFFIX[stream_compression(fmt, compression)]


def content_type(fmt: str, compression: str | None) -> str:
    outer = stream_compression(fmt, compression)
    return _COMPRESSED_TYPE.get(outer, _CONTENT_TYPE[fmt])


def parquet_codec(compression: str | None) -> str:
    """The column codec, named as pyarrow's Parquet writer names it."""
    return compression_of("parquet", compression)


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


def compressor(fmt: str, compression: str | None, gzip_level: int) -> Compressor | None:
    """A stream compressor for one file's bytes, or None (written as they are)."""
    kind = stream_compression(fmt, compression)
    if kind == "gzip":
        return zlib.compressobj(gzip_level, zlib.DEFLATED, 31)
    if kind == "zstd":
        import zstandard  # only when used

        return zstandard.ZstdCompressor(level=3).compressobj()
    return None


def duckdb_reader(fmt: str, types: dict[str, str], csv: Any, rejects: str,
                  compressed: bool = False, longest_row: int = 0) -> tuple[str, dict[str, Any]]:
    """A DuckDB table function reading `$files` of this format, typed as `types`
    (its SQL and parameters); CSV rows it cannot convert are collected as
    `rejects` says (read_csv options).  Compression is told by the name;
    `compressed`: some of the files are (their rows then go up to `longest_row`,
    loaders/duckdb_memory.py)."""
    if fmt == "parquet":  # typed in the file; the INSERT casts to the table's types
        return "read_parquet($files)", {}
    if compressed:
        from streamer.loaders.duckdb_memory import compressed_read

        options = compressed_read(fmt, longest_row)[0]
    if fmt == "ndjson":
        limit = ((f", {options}" if options else "") if compressed
                 else f", maximum_object_size = {LONGEST_ROW}")
        return ("read_json($files, format = 'newline_delimited', columns = $columns"
                f"{limit})", {"columns": types})
    limit = ((f"{options}, " if options else "") if compressed
             else f"max_line_size = {LONGEST_ROW}, ")
    return ("read_csv($files, header = true, delim = $sep, quote = $quote, escape = $quote, "
            f"nullstr = $null, auto_detect = false, columns = $columns, {limit}{rejects})",
            {"sep": csv.separator, "quote": csv.quote, "null": csv.null_value,
             "columns": types})
