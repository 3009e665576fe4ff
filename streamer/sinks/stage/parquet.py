"""Parquet stage files written as they fill: each batch's typed rows (an Arrow
table from DuckDB's query) become row groups of the open file at once, and the
bytes go to the store like CSV rows; closing writes the footer.

A Parquet file is valid only once its footer is written, which is why the
store never uploads or loads an open file (it completes a file only after
`close`'s bytes).  What an open file holds in memory is its footer's metadata
(a few hundred bytes a row group), not its rows.

Encodings are chosen per file from its first batch: a dictionary for the columns
with at most 3 distinct values in 4 rows (one of unique values, such as ids, costs
time and bytes), min/max statistics for the typed columns (numbers,
booleans, timestamps: what readers prune row groups by), not for text.

pyarrow is imported only here, and this module only when a Parquet stage is
configured: other runs do not pay its import time and memory.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# the SQL types of typed.py as Arrow types (DuckDB's Arrow result gives the same;
# a cast settles a time zone's name)
_ARROW_TYPES = {"BIGINT": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
                "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"), "VARCHAR": pa.string()}


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


class ParquetFileWriter:
    """One open Parquet stage file; used from one thread at a time."""

    def __init__(self, schema: pa.Schema, codec: str) -> None:
        self._schema = schema
        self._codec = codec
        self._out = _Chunks()
        self._writer: pq.ParquetWriter | None = None
        self._statistics = [field.name for field in schema
                            if not pa.types.is_string(field.type)] or False

    def _open(self, first: pa.Table) -> pq.ParquetWriter:
        # Parquet's format version 2.6 (pyarrow's default) for the logical types
        return pq.ParquetWriter(self._out, self._schema, compression=self._codec,
                                use_dictionary=_dictionary_columns(first),
                                write_statistics=self._statistics)

    def write(self, table: pa.Table) -> bytes:
        """The file's next bytes: `table`'s rows as one row group (the header
        before the first)."""
        if table.num_rows:
            if not table.schema.equals(self._schema):
                table = table.cast(self._schema)
            if self._writer is None:
                self._writer = self._open(table)
            self._writer.write_table(table, row_group_size=table.num_rows)
        return self._out.take()

    def close(self) -> bytes:
        """The file's last bytes (its footer; the whole file if no row was written)."""
        if self._writer is None:
            self._writer = self._open(self._schema.empty_table())
        self._writer.close()
        return self._out.take()


class ParquetFiles:
    """One sink's Parquet files: their schema (the typed columns) and codec."""

    def __init__(self, types: dict[str, str], codec: str) -> None:
        self._schema = arrow_schema(types)
        self._codec = codec

    def open(self) -> ParquetFileWriter:
        return ParquetFileWriter(self._schema, self._codec)
