"""Parquet stage files written as they fill: the batches' typed rows (Arrow
tables from DuckDB's query) are held until they make a row group of
`ROW_GROUP_ROWS` rows (DuckDB's own size: readers pay per row group, and a
batch's 5,000-20,000 rows made DuckDB's loads 2.6x slower) or `HELD_BYTES` of
Arrow memory (a wide record shape must not hold hundreds of MiB per open
file) or the sink's open files together hold `SINK_HELD_BYTES` (a sink with
many open files -- exactly once, a file per stream -- holds at most that, and its
row groups get smaller instead), then written as one row group whose bytes go to the store like CSV
rows; closing writes what is held, then the footer.

A Parquet file is valid only once its footer is written, which is why the
store never uploads or loads an open file (it completes a file only after
`close`'s bytes), and nothing is acknowledged before its file completes: held
rows are in no file yet, and a crash loses them with the open file, whose
records are replayed.  `held_bytes` estimates what the held rows will add to
the file (their Arrow bytes times the Parquet/Arrow ratio of the sink's row
groups so far, 1 before the first) so that `max_file_bytes` closes a file
near its size.

Encodings are chosen per file from its first batch: a dictionary for the columns
with at most 3 distinct values in 4 rows (one of unique values, such as ids, costs
time and bytes), min/max statistics for the typed columns (numbers,
booleans, timestamps: what readers prune row groups by), not for text.

pyarrow is imported only here, and this module only when a Parquet stage is
configured: other runs do not pay its import time and memory.
"""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# the SQL types of typed.py as Arrow types (DuckDB's Arrow result gives the same;
# a cast settles a time zone's name)
_ARROW_TYPES = {"BIGINT": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
                "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"), "VARCHAR": pa.string()}


# a row group's rows (DuckDB writes and reads 122,880-row groups) and the Arrow
# bytes an open file holds at most before it writes what it holds as a row group
ROW_GROUP_ROWS = 122_880
HELD_BYTES = 32 << 20
SINK_HELD_BYTES = 64 << 20  # what all of a sink's open files hold together

# a first batch of fewer rows says too little about the columns: all get a dictionary
_FEW_ROWS = 100


def arrow_schema(types: dict[str, str]) -> pa.Schema:
    return pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in types.items()])


def _dictionary_columns(table: pa.Table) -> list[str] | bool:
    if table.num_rows < _FEW_ROWS:
        return True
    return [field.name for field, column in zip(table.schema, table.columns, strict=True)
            if 4 * len(column.unique()) <= 3 * table.num_rows]


class _Chunks:
    """The writer's output stream: what it wrote since the last `take`."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class _SizeRatio:
    """Parquet bytes per Arrow byte of a sink's row groups written so far."""

    def __init__(self) -> None:
        self._parquet = 0
        self._arrow = 0

    def observe(self, parquet: int, arrow: int) -> None:
        self._parquet += parquet
        self._arrow += arrow

    def estimate(self, arrow: int) -> int:
        return arrow * self._parquet // self._arrow if self._arrow else arrow


class _HeldBudget:
    """The Arrow bytes a sink's open files hold together, and their limit (files
    may be written from two threads at once: one completing, one filling)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    def add(self, delta: int) -> bool:
        """Counts `delta` more bytes held; whether the limit is reached."""
        with self._lock:
            self.held += delta
            return self.held >= self.limit


class ParquetFileWriter:
    """One open Parquet stage file; used from one thread at a time."""

    def __init__(self, schema: pa.Schema, codec: str, ratio: _SizeRatio, max_file_bytes: int,
                 row_group_rows: int = ROW_GROUP_ROWS, held_cap: int = HELD_BYTES,
                 budget: _HeldBudget | None = None) -> None:
        self._schema = schema
        self._budget = budget or _HeldBudget(SINK_HELD_BYTES)
        self._codec = codec
        self._ratio = ratio
        self._max_file_bytes = max_file_bytes
        self._row_group_rows = row_group_rows
        self._held_cap = held_cap
        self._out = _Chunks()
        self._writer: pq.ParquetWriter | None = None
        self._statistics = [field.name for field in schema
                            if not pa.types.is_string(field.type)] or False
        self._held: list[pa.Table] = []
        self._held_rows = 0
        self._held_arrow_bytes = 0

    @property
    def held_bytes(self) -> int:
        """The estimated Parquet bytes of the rows held for the next row group."""
        return self._ratio.estimate(self._held_arrow_bytes) if self._held_rows else 0

    def _open(self, first: pa.Table) -> pq.ParquetWriter:
        # Parquet's format version 2.6 (pyarrow's default) for the logical types
        return pq.ParquetWriter(self._out, self._schema, compression=self._codec,
                                use_dictionary=_dictionary_columns(first),
                                write_statistics=self._statistics)

    def write(self, table: pa.Table) -> bytes:
        """The file's next bytes: `table`'s rows are held, and written (with those
        held before) as row groups of `ROW_GROUP_ROWS` rows once they make one, or
        all at once when they hold `HELD_BYTES` of Arrow memory or would make the
        file reach `max_file_bytes`; b"" meanwhile."""
        if table.num_rows:
            if not table.schema.equals(self._schema):
                table = table.cast(self._schema)
            if self._writer is None and not self._held:
                self._writer = self._open(table)  # encodings from the first batch
            self._held.append(table)
            self._held_rows += table.num_rows
            self._held_arrow_bytes += table.nbytes
            over_budget = self._budget.add(table.nbytes)
            if (self._held_arrow_bytes >= self._held_cap or over_budget
                    or self._out.tell() + self.held_bytes >= self._max_file_bytes):
                self._write_held(self._held_rows)
            elif self._held_rows >= self._row_group_rows:
                self._write_held(self._held_rows - self._held_rows % self._row_group_rows)
        return self._out.take()

    def _write_held(self, rows: int) -> None:
        """Writes the first `rows` held rows (whole row groups) and holds the rest."""
        held = self._held[0] if len(self._held) == 1 else pa.concat_tables(self._held)
        total, arrow_bytes = self._held_rows, self._held_arrow_bytes
        written_bytes = arrow_bytes * rows // total
        before = self._out.tell()
        self._writer.write_table(held.slice(0, rows) if rows < total else held,
                                 row_group_size=self._row_group_rows
                                 if rows < total else max(rows, 1))
        self._ratio.observe(self._out.tell() - before, written_bytes)
        self._held = [held.slice(rows)] if rows < total else []
        self._held_rows = total - rows
        self._held_arrow_bytes = arrow_bytes - written_bytes
        self._budget.add(-written_bytes)

    def close(self) -> bytes:
        """The file's last bytes: the rows held, then its footer (the whole file if
        no row was written)."""
        if self._writer is None:
            self._writer = self._open(self._schema.empty_table())
        if self._held_rows:
            self._write_held(self._held_rows)
        self._writer.close()
        return self._out.take()

    def discard(self) -> None:
        """The file is abandoned: what it holds is let go, never written."""
        self._budget.add(-self._held_arrow_bytes)
        self._held, self._held_rows, self._held_arrow_bytes = [], 0, 0


class ParquetFiles:
    """One sink's Parquet files: their schema (the typed columns), codec and the
    Parquet/Arrow size ratio their row groups show."""

    def __init__(self, types: dict[str, str], codec: str, max_file_bytes: int,
                 row_group_rows: int = ROW_GROUP_ROWS, held_cap: int = HELD_BYTES,
                 sink_held: int = SINK_HELD_BYTES) -> None:
        self._schema = arrow_schema(types)
        self._budget = _HeldBudget(sink_held)
        self._codec = codec
        self._max_file_bytes = max_file_bytes
        self._ratio = _SizeRatio()
        self._row_group_rows = row_group_rows
        self._held_cap = held_cap

    def open(self) -> ParquetFileWriter:
        return ParquetFileWriter(self._schema, self._codec, self._ratio,
                                 self._max_file_bytes, self._row_group_rows, self._held_cap,
                                 self._budget)
