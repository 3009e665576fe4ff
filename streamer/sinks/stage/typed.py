"""NDJSON and Parquet stage files: the CSV encoder's cells, typed, to another
DuckDB target.

Both encoders make the same text cells as for CSV (with nulls as empty
cells); here they are cast to the column's type and written elsewhere: NDJSON
batches by `COPY` of one line per record (built here, appended to the file),
Parquet rows fetched as an Arrow table that `parquet.py` writes as row
groups of the open file.  A batch the
native query refuses comes back from the per-record encoder as CSV, which DuckDB
reads and casts the same way.

Types (docs/configuration.md "Output formats"): integer BIGINT, double DOUBLE,
boolean BOOLEAN, an `epoch_*` timestamp BIGINT, an `iso8601` timestamp
TIMESTAMPTZ in Parquet (microseconds) and its text in NDJSON, json VARCHAR in
Parquet and the value itself in NDJSON, string and plain columns VARCHAR.  An
empty cell is null, as CSV's empty field.

A json column's value in an NDJSON line is the cell's text as it is, not DuckDB's
JSON writer's re-spelling of it (`COPY ... (FORMAT json)` wrote orjson's `1e+21` as
`1e21` and `1e+16` as `10000000000000000.0`): the same text in every format.  The
other values are `to_json`'s, the JSON writer's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from streamer.mapping.spec import ColumnSpec
from streamer.sinks.stage.formats import LONGEST_ROW

_TYPES = {"integer": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN"}


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def column_type(spec: ColumnSpec, fmt: str) -> str:
    """The SQL type of a column in a file of `fmt` (ndjson or parquet)."""
    if spec.type == "timestamp":
        if spec.format != "iso8601":
            return "BIGINT"
        return "TIMESTAMPTZ" if fmt == "parquet" else "VARCHAR"
    if spec.type == "json":
        return "JSON" if fmt == "ndjson" else "VARCHAR"
    return _TYPES.get(spec.type, "VARCHAR")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a query's rows go: `head` + the SELECT + `tail` (`fetch`: a query whose
    rows are fetched as an Arrow table, else a statement that writes them and
    gives their count)."""

    head: str
    tail: str
    fetch: bool = False


class TypedOutput:
    """The typed targets of one sink's encoder (one DuckDB connection)."""

    def __init__(self, specs: Sequence[ColumnSpec], fmt: str, out_path: str) -> None:
        self.fmt = fmt
        self._out = out_path
        self.types = {spec.name: column_type(spec, fmt) for spec in specs}
        positions = [f"c{i}" for i in range(len(specs))]
        self._alias = f") AS streamer_cells({', '.join(positions)})"
        # the native query's cells are null where empty; CSV read back has '' too
        select = self._line if fmt == "ndjson" else self._select
        self._casts = select(positions, "{}")
        self._csv_casts = select(positions, "NULLIF({}, '')")
        self._csv_columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in positions) + "}"

    def _select(self, cells: list[str], cell: str) -> str:
        return ", ".join(
            (cell.format(c) if kind == "VARCHAR" else f"CAST({cell.format(c)} AS {kind})")
            + f" AS {_identifier(name)}"
            for c, (name, kind) in zip(cells, self.types.items(), strict=True))

    def _line(self, cells: list[str], cell: str) -> str:
        """One NDJSON line's text: `{"name":value,...}`, keys in the columns' order,
        a null cell `null`."""
        parts = []
        for index, (c, (name, kind)) in enumerate(zip(cells, self.types.items(),
                                                      strict=True)):
            key = ("{" if index == 0 else ",") + orjson.dumps(name).decode() + ":"
            value = cell.format(c)
            if kind != "JSON":  # a json cell is JSON text already: kept as it is
                value = f"to_json({value if kind == 'VARCHAR' else f'CAST({value} AS {kind})'})"
            parts.append(f"{_literal(key)} || coalesce({value}, 'null')")
        return " || ".join(parts) + " || '}' AS line"

    def target(self, from_csv: bool = False) -> Target:
        """Where the native query's rows go (`from_csv`: `from_csv`'s rows)."""
        casts = self._csv_casts if from_csv else self._casts
        if self.fmt == "parquet":
            return Target(f"SELECT {casts} FROM (", self._alias, fetch=True)
        # the lines as they are: no quoting (JSON text holds no raw newline)
        return Target(f"COPY (SELECT {casts} FROM (",
                      f"{self._alias}) TO '{self._out}' (FORMAT csv, HEADER false, "
                      "QUOTE '', ESCAPE '', USE_TMP_FILE false)")

    def from_csv(self, path: str) -> str:
        """The per-record encoder's CSV rows (no header, `,` `"`, nulls empty) as
        the query's cells."""
        return (f"SELECT * FROM read_csv('{path}', header = false, delim = ',', "
                f"quote = '\"', escape = '\"', nullstr = '', auto_detect = false, "
                f"new_line = '\\r\\n', max_line_size = {LONGEST_ROW}, "
                f"columns = {self._csv_columns})")
