"""How many records local stage files hold, counted from their bytes: the count a
DuckDB load is checked against when the journal has none for what it reads (a window
an earlier run left open, closed from its files; an exactly-once window some of whose
files another window loaded).

Counted without DuckDB's readers (the check is there for rows they skip): an NDJSON
record is one line (JSON escapes a newline in a string); a CSV record is one row, a
line end outside quotes (the encoders double a quote inside a quoted cell, so the
quotes before a row's end are even), less the header; a Parquet file says its rows.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import IO

CHUNK = 1 << 20


def _opened(path: str) -> IO[bytes]:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".zst"):
        import zstandard  # only when used

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"),
                                                          closefd=True)
    return open(path, "rb")


def _chunks(path: str) -> Iterator[bytes]:
    with _opened(path) as stream:
        while chunk := stream.read(CHUNK):
            yield chunk


def ndjson_records(path: str) -> int:
    count, last = 0, b"\n"
    for chunk in _chunks(path):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    return count + (last != b"\n")  # a last line without its end


def csv_records(path: str, quote: str) -> int:
    """Rows after the header: line ends with an even number of quotes before them."""
    mark = quote.encode()
    rows, inside, last, empty = 0, False, b"\n", True
    for chunk in _chunks(path):
        empty = False
        pieces = chunk.split(mark)
        # pieces alternate outside/inside quotes, starting as the last chunk ended
        rows += sum(p.count(b"\n") for p in pieces[1 if inside else 0::2])
        inside ^= (len(pieces) - 1) % 2 == 1
        last = chunk[-1:]
    if empty:
        return 0
    return rows + (last != b"\n") - 1


def staged_records(files: list[str], fmt: str, quote: str, con) -> int:
    """The records `files` hold (a Parquet file's own row count, read by `con`)."""
    if fmt == "parquet":
        return con.execute("SELECT coalesce(sum(num_rows), 0) FROM "
                           "parquet_file_metadata($files)", {"files": files}).fetchone()[0]
    if fmt == "ndjson":
        return sum(ndjson_records(f) for f in files)
    return sum(csv_records(f, quote) for f in files)
