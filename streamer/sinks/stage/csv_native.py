"""CSV encoding of a whole batch in native code: DuckDB reads the records' raw
NDJSON lines and writes the CSV rows.

The rows are those `csv_python.CsvEncoder` writes for the same records: columns in
order, strings unescaped, numbers as Python prints them, booleans and nested
values as compact JSON text, missing and null values as `null_value`, minimal
quoting, rows ending with CRLF.  (DuckDB's JSON reader prints numbers as the
shortest round trip, as Python does, and its CSV writer quotes the same
characters.)  Anything DuckDB refuses (duplicate keys, say) raises
`NativeEncodeError` and the caller encodes that batch per record instead.

The bytes go through two memory files (memfd): no disk, no temporary names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import duckdb

from streamer.core.lines import Lines

# fewer records go to the per-record encoder.  A DuckDB query costs about 3 ms
# besides its rows (20 columns, measured 2026-12-01) and the per-record encoder
# about 6 us a record: below a few hundred records neither is clearly faster
MIN_RECORDS = 64
# DuckDB's JSON reader holds buffers of `maximum_object_size` (16 MiB by
# default): sized to the batch's largest record instead, at least this
MIN_OBJECT_SIZE = 1024 * 1024


def _object_size(parts: Sequence[Lines]) -> int:
    """The smallest power of two >= MIN_OBJECT_SIZE that holds every record."""
    return max(MIN_OBJECT_SIZE, 1 << max(part.longest for part in parts).bit_length())


class NativeEncodeError(Exception):
    pass


def native_available(columns: Sequence[str]) -> bool:
    # a one-column row of a null would be an empty line, which CSV readers skip
    return hasattr(os, "memfd_create") and len(columns) >= 2


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class NativeCsvEncoder:
    """One per sink; used from one thread at a time."""

    def __init__(self, columns: Sequence[str], *, separator: str = ",", quote: str = '"',
                 null_value: str = "", threads: int = 1) -> None:
        self._con = duckdb.connect(config={"threads": threads})
        self._in = os.memfd_create("streamer-ndjson", os.MFD_CLOEXEC)
        self._out = os.memfd_create("streamer-csv", os.MFD_CLOEXEC)
        spec = ", ".join(f"{_sql_string(c)}: 'VARCHAR'" for c in columns)
        # an empty string and a null would both be an empty field with null_value
        # "": DuckDB would quote the empty string, the per-record encoder does not
        select = ", ".join(
            f"NULLIF({_identifier(c)}, '')" if null_value == "" else _identifier(c)
            for c in columns)
        # the query around the batch's maximum_object_size
        self._query_head = (
            f"COPY (SELECT {select} FROM read_json("
            f"'/proc/self/fd/{self._in}', format = 'newline_delimited', "
            f"columns = {{{spec}}}, maximum_object_size = ")
        self._query_tail = (
            f")) TO '/proc/self/fd/{self._out}' (FORMAT csv, HEADER false, "
            f"DELIMITER {_sql_string(separator)}, QUOTE {_sql_string(quote)}, "
            f"ESCAPE {_sql_string(quote)}, NULLSTR {_sql_string(null_value)}, "
            f"NEW_LINE '\\r\\n', USE_TMP_FILE false)")

    def encode(self, parts: Sequence[Lines]) -> bytes:
        """CSV rows for these records, in order."""
        try:
            self._write_input(parts)
            os.ftruncate(self._out, 0)
            query = f"{self._query_head}{_object_size(parts)}{self._query_tail}"
            rows = self._con.execute(query).fetchone()[0]  # COPY answers its row count
            size = os.fstat(self._out).st_size
            csv = os.pread(self._out, size, 0)
        except duckdb.Error as exc:
            raise NativeEncodeError(str(exc).splitlines()[0]) from None
        except OSError as exc:  # a memory file refused (RLIMIT_FSIZE, a memory limit)
            raise NativeEncodeError(f"memory file: {exc.strerror}") from None
        records = sum(part.count for part in parts)
        if rows != records:  # never seen; a silent loss if it ever happened
            raise NativeEncodeError(f"{rows} CSV rows for {records} records")
        if len(csv) != size:
            raise NativeEncodeError(f"read {len(csv)} of {size} CSV bytes")
        return csv

    def _write_input(self, parts: Sequence[Lines]) -> None:
        offset = 0
        for part in parts:
            for buffer in part.ndjson():  # a block as it was read: no copy in Python
                view = memoryview(buffer)
                while view:
                    written = os.pwrite(self._in, view, offset)
                    offset += written
                    view = view[written:]
        # cut only what the last batch left beyond this one: writing over the
        # pages already there costs a third of freeing them and getting new ones
        os.ftruncate(self._in, offset)

    def close(self) -> None:
        self._con.close()
        os.close(self._in)
        os.close(self._out)
