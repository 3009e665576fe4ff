"""Parquet stage files written as they fill: each batch's typed rows (an Arrow
table from DuckDB's query) become row groups of the open file at once, and the
bytes go to the store like CSV rows; closing writes the footer.

A Parquet file is valid only once its footer is written, which is why the
store never uploads or loads an open file (it completes a file only after
`close`'s bytes).  What an open file holds in memory is its footer's metadata
(a few hundred bytes a row group), not its rows.

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


def arrow_schema(types: dict[str, str]) -> pa.Schema:
    return pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in types.items()])


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
        self._out = _Chunks()
        # Parquet's format version 2.6 (pyarrow's default) for the logical types;
        # statistics for readers' row-group pruning, as DuckDB writes them
        self._writer = pq.ParquetWriter(self._out, schema, compression=codec,
                                        write_statistics=True)

    def write(self, table: pa.Table) -> bytes:
        """The file's next bytes: `table`'s rows as one row group (the header
        before the first)."""
        if table.num_rows:
            if not table.schema.equals(self._schema):
                table = table.cast(self._schema)
            self._writer.write_table(table, row_group_size=table.num_rows)
        return self._out.take()

    def close(self) -> bytes:
        """The file's last bytes (its footer; the whole file if nothing was written)."""
        self._writer.close()
        return self._out.take()


class ParquetFiles:
    """One sink's Parquet files: their schema (the typed columns) and codec."""

    def __init__(self, types: dict[str, str], codec: str) -> None:
        self._schema = arrow_schema(types)
        self._codec = codec

    def open(self) -> ParquetFileWriter:
        return ParquetFileWriter(self._schema, self._codec)
