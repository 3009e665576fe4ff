"""CSV encoding of a whole batch in native code: DuckDB reads the records' raw
NDJSON lines and writes the CSV rows.

The bytes are those `csv_python.CsvEncoder` writes for the same records (the
reference; docs/configuration.md "CSV cells" states the rule).  DuckDB prints top-level
numbers as Python does and quotes the same characters once told that no
character starts a comment and once nulls are written as `null_value` text (it
quotes a string equal to its NULLSTR, Python's csv does not).  What it renders
otherwise is found by the query itself, in SQL, and fails it with
`NativeEncodeError`: the caller encodes that batch per record instead.  Only
nested values can differ: numbers and escapes that yyjson writes otherwise than
orjson (`1e21` for `1e+21`, `0.000001` for `1e-6`, `100000000000000000000.0` for
`1e+20`, `\\u001F` for `\\u001f`) and objects with a repeated key (kept twice
here, once in Python).  Those checks run only in a batch whose bytes may hold a
nested value and that the C scan of `nested_scan.py` does not prove clean, and
look only at cells that start with `{` or `[`; with the default
empty `null_value`, a batch that holds no empty string has its cells copied as
they are (no NULLIF): both proven by a byte scan of the batch (`batch_scan.py`).
The query of each kind is prepared once.

With a column mapping (any `columns` entry that is not a plain field name), for
CSV the C typed encoder (`mapping.typed_c`, one pass over the batch's bytes, no
query) or else `mapping.sql_typed.TypedMappingQuery`'s query (one pass of DuckDB's
JSON reader, a few casts a cell) writes the rows of the records it is sure of, and
`mapping.sql.MappingQuery`'s the rest (all the batch when the typed step is sure of
fewer than half or fails); other formats the full query: records with a value that
cannot be converted are left out and named with their reasons (`Encoded.rejected`),
csv_mapped.py.

The bytes go through two memory files (memfd): no disk, no temporary names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamer.core.duckdb_c import duckdb
from streamer.core.lines import Lines
from streamer.mapping.c_functions import mapping_connection
from streamer.mapping.spec import ColumnSpec, all_plain
from streamer.mapping.sql import MACROS, MappingQuery
from streamer.mapping.sql_typed import TypedMappingQuery
from streamer.mapping.typed_c import typed_plan
from streamer.sinks.stage.batch_scan import Buffer, may_nest, no_empty_string
from streamer.sinks.stage.csv_mapped import MappedEncoding, NativeEncodeError, object_size
from streamer.sinks.stage.csv_python import CsvEncoder
from streamer.sinks.stage.nested_scan import nested_proven_alike
from streamer.sinks.stage.typed import Target

# fewer records go to the per-record encoder.  A DuckDB query costs about 3 ms
# besides its rows (20 columns, measured 2026-12-01) and the per-record encoder
# about 6 us a record: below a few hundred records neither is clearly faster
MIN_RECORDS = 64


@dataclass(slots=True)
class Encoded:
    """CSV rows, and the records (index in the batch, reason) left out of them
    (a target that fetches its rows: them as an Arrow table, `rows` empty)."""

    rows: bytes
    rejected: list[tuple[int, str]] = field(default_factory=list)
    table: Any = None


def native_available(columns: Sequence[object]) -> bool:
    return hasattr(os, "memfd_create") and len(columns) >= 1


def _arrow_table(con: Any, query: str) -> Any:
    """A query's rows as an Arrow table (a Parquet stage's): the relation API is
    DuckDB's Python package's, which adds `sql` to every connection when imported."""
    import duckdb  # noqa: F401  (its import adds `sql` to every connection)

    return con.sql(query).to_arrow_table()


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Cells DuckDB would write otherwise than Python (see the module's docstring),
# as SQL macros over one VARCHAR cell, each a CASE so that the cheap tests (a
# first byte) settle almost every cell and the dear ones see only the rest.
# In yyjson's compact text, outside strings: a positive exponent (1e21), a float
# of 17+ integer digits (>= 1e16, written 1e+16 by orjson), a float in [1e-6,
# 1e-5) (0.000001, orjson 1e-6);
# anywhere: a \u escape with an upper-case hex letter (orjson writes lower case).
# The prefix walks whole strings, so a match is never inside one.
_NESTED_RENDERING = (
    r"""\\u00[01][A-F]|^(?:[^"]|"(?:[^"\\]|\\.)*")*?"""
    r"""(?:[0-9]e[0-9]|[0-9]{17}\.|[\[,:]-?0\.00000[0-9])""")
# A repeated key, in two steps.  First a cheap proof that there is none:
# `json_structure` writes each object's keys once (a repeated key, and the keys of
# an array's objects, merged into one) with a type name for each value, so it
# holds no more `":` than the cell (one after each key, plus those in keys, as
# in the cell; the cell's string values may hold more) and as many only if it
# merged nothing.  Cells with an array of
# objects (`,{`: its objects' keys are merged too) skip it; those it does not
# settle (a `\":` in a string value, a repeated key) take the exact test too:
# a JSON -> VARIANT cast keeps one of each key (keys sorted, numbers and escapes
# as yyjson writes them), so only a repeated key changes the length.  JSON that
# VARIANT cannot hold counts as one; text that is not JSON (a string starting
# with `{`) does not.
_NESTED_DIFFERS = f"""
CREATE MACRO streamer_nested_differs(c) AS CASE
    WHEN regexp_matches(c, '{_NESTED_RENDERING.replace("'", "''")}') THEN true
    WHEN NOT contains(c, '{{') THEN false
    WHEN NOT contains(c, ',{{') AND strlen(c) - strlen(replace(c, '":', ''))
         = 2 * (len(string_split(json_structure(TRY_CAST(c AS JSON)), '":')) - 1) THEN false
    ELSE coalesce(strlen(CAST(TRY_CAST(TRY_CAST(c AS JSON) AS VARIANT) AS JSON))
                  <> strlen(c), json_valid(c)) END
"""
# Only a nested value can differ: integers past 64 bits, the one top-level number
# DuckDB would write otherwise (its digits, where orjson decodes a float), never
# get here (core/ndjson.py dead-letters them).
_RENDERS_OTHERWISE = """
CREATE MACRO streamer_renders_otherwise(c) AS
    CASE WHEN (c >= '[' AND c < ']') OR (c >= '{' AND c < '|')
         THEN streamer_nested_differs(c) ELSE false END
"""


class NativeCsvEncoder(MappedEncoding):
    """One per sink; used from one thread at a time."""

    def __init__(self, specs: Sequence[ColumnSpec | str], *, separator: str = ",",
                 quote: str = '"', null_value: str = "", threads: int = 1) -> None:
        specs = [ColumnSpec.model_validate(c) for c in specs]
        columns = [c.name for c in specs]
        self._in = os.memfd_create("streamer-ndjson", os.MFD_CLOEXEC)
        self._out = os.memfd_create("streamer-csv", os.MFD_CLOEXEC)
        self._mapping = None if all_plain(specs) else MappingQuery(specs, null_value)
        self.c_functions = False  # the mapping's timestamps in C (tests read it)
        if self._mapping is None:
            self._con = duckdb.connect(config={"threads": threads})
        else:
            self._con, self.c_functions = mapping_connection(
                threads, (self.input_path, self.output_path))
        for macro in (_NESTED_DIFFERS, _RENDERS_OTHERWISE, *MACROS):
            self._con.execute(macro)
        self._typed = None if self._mapping is None else TypedMappingQuery.of(
            specs, null_value, c_functions=self.c_functions)
        # the typed encoder in C (mapping/typed_c.py), for CSV: None without one
        self.typed_c = None if self._mapping is None or len(specs) == 1 else typed_plan(
            specs, null_value, separator, quote)
        self.c_batches = 0  # batches the C typed (tests read it; counted as typed/split too)
        self._python = None if self.typed_c is None else CsvEncoder(
            specs, separator=separator, quote=quote, null_value=null_value)
        self._statements: set[str] = set()  # the names of those prepared
        self.typed_batches = 0  # batches the typed query (or the C) wrote (tests read it)
        self.split_batches = 0  # ... wrote but for a few records (the full query's)
        spec = ", ".join(f"{_sql_string(c)}: 'VARCHAR'" for c in columns)
        cells = [_identifier(c) for c in columns]
        self._columns = len(columns)
        # a row filter, not a cell expression: a filter stops at the first test
        # that settles a row, and the cells are copied as they are
        checks = " ".join(
            f"WHEN streamer_renders_otherwise({cell}) THEN error("
            f"{_sql_string(f'a value DuckDB writes otherwise than Python in column {column}')})"
            for column, cell in zip(columns, cells, strict=True))
        # cells as they are: for a batch with no empty string (an empty field is a null)
        self._bare_select = ", ".join(cells) if null_value == "" else None
        if null_value == "":
            # an empty string and a null are both an empty field; DuckDB would
            # quote the empty string, the per-record encoder does not
            select = ", ".join(f"NULLIF({cell}, '')" for cell in cells)
            null_text = ""
        else:
            # nulls as text: DuckDB quotes a string equal to its NULLSTR, Python's
            # csv does not.  No cell is "\n" unquoted, so NULLSTR "\n" is never seen
            select = ", ".join(f"COALESCE({cell}, {_sql_string(null_value)})"
                               for cell in cells)
            null_text = "\n"
        one = len(columns) == 1
        if one:
            # Python's csv writes a row of one empty field as `""` (an empty line is no
            # row): the CSV target makes every null '' (the mapped queries' too), and
            # DuckDB quotes a string equal to its NULLSTR
            null_text = ""
        self._select = select
        # the reader, around the batch's maximum_object_size; `records`: with one
        # column, a batch of `{}` alone would be read as that column's value
        self._from_head = (
            f" FROM read_json('/proc/self/fd/{self._in}', format = 'newline_delimited', "
            f"records = true, columns = {{{spec}}}, maximum_object_size = ")
        self._targets: dict[Target, int] = {}  # a number for each target seen
        self._query_filter = f" WHERE CASE {checks} ELSE true END"
        # COMMENT '': DuckDB quotes any value holding the comment character (#)
        self._query_tail = (
            f") TO '/proc/self/fd/{self._out}' (FORMAT csv, HEADER false, "
            f"DELIMITER {_sql_string(separator)}, QUOTE {_sql_string(quote)}, "
            f"ESCAPE {_sql_string(quote)}, NULLSTR {_sql_string(null_text)}, "
            f"COMMENT '', NEW_LINE '\\r\\n', USE_TMP_FILE false)")
        # other formats: typed.py
        self.csv = Target("COPY (", self._query_tail) if not one else Target(
            "COPY (SELECT COALESCE(CAST(COLUMNS(*) AS VARCHAR), '') FROM (",
            f"){self._query_tail}")

    @property
    def output_path(self) -> str:
        return f"/proc/self/fd/{self._out}"

    def _plain_statement(self, parts: Sequence[Lines], buffers: Sequence[Buffer],
                         target: Target) -> str:
        """The plain query for this batch: the checks only where a value may be
        nested and the native scan does not prove them needless, the cells
        without NULLIF where no string is empty."""
        checks = may_nest(parts, buffers) and not nested_proven_alike(buffers)
        bare = self._bare_select is not None and no_empty_string(parts, buffers, self._columns)
        number = self._targets.setdefault(target, len(self._targets))
        size = object_size(parts)
        return self._statement(f"plain{number}{'c' if checks else ''}{'b' if bare else ''}",
                               size, lambda: (
            f"{target.head}SELECT {self._bare_select if bare else self._select}"
            f"{self._from_head}{size}){self._query_filter if checks else ''}{target.tail}"))

    def _reader(self, size: int) -> str:
        return (f"read_ndjson_objects('/proc/self/fd/{self._in}', "
                f"maximum_object_size = {size})")

    def _execute(self, statement: str, target: Target) -> tuple[int, Any]:
        """The rows a statement wrote (COPY's count), or the rows it selected as an
        Arrow table when `target` fetches them."""
        if target.fetch:
            table = _arrow_table(self._con, statement)
            return table.num_rows, table
        return self._con.execute(statement).fetchone()[0], None

    def _statement(self, kind: str, size: int, sql: Callable[[], str]) -> str:
        """EXECUTE of the prepared statement `sql()` for this `maximum_object_size`
        (`kind` names the query).  DuckDB binds and optimizes it again at each
        EXECUTE (measured: a prepared statement is no plan cache here), but does not
        parse it again: 1.7 of the 6.6 ms the typed query costs besides its rows,
        for the bench's 20 columns, 5-8 of the full query's 40."""
        name = f"streamer_{kind}_{size}"
        if name not in self._statements:
            self._con.execute(f"PREPARE {name} AS {sql()}")
            self._statements.add(name)
        return f"EXECUTE {name}"

    def encode(self, parts: Sequence[Lines], target: Target | None = None) -> Encoded:
        """CSV rows for these records, in order, and the records left out (another
        `target`: the rows it writes to the output, if any, or fetches)."""
        rejected: list[tuple[int, str]] = []
        table = None
        try:
            records = sum(part.count for part in parts)
            target = target or self.csv
            done = None
            if self.typed_c is not None and target is self.csv:
                done = self._c_mapped(parts, records)
            if done is None:
                buffers = self._write_input(parts)
                os.ftruncate(self._out, 0)
            if done is not None:
                rows, rejected, merged, table = done
            elif self._mapping is None:
                merged = None
                rows, table = self._execute(
                    self._plain_statement(parts, buffers, target), target)
            else:
                rows, rejected, merged, table = self._mapped(parts, records, target)
            size = os.fstat(self._out).st_size if merged is None else len(merged)
            csv = os.pread(self._out, size, 0) if merged is None else merged
        except duckdb.Error as exc:
            raise NativeEncodeError(str(exc).splitlines()[0]) from None
        except UnicodeDecodeError:  # DuckDB's message quotes the input, cut mid-character
            raise NativeEncodeError("DuckDB refused the batch (message not UTF-8)") from None
        except OSError as exc:  # a memory file refused (RLIMIT_FSIZE, a memory limit)
            raise NativeEncodeError(f"memory file: {exc.strerror}") from None
        if rows + len(rejected) != records:  # never seen; a silent loss if it happened
            raise NativeEncodeError(f"{rows} CSV rows and {len(rejected)} rejected for "
                                    f"{records} records")
        if len(csv) != size:
            raise NativeEncodeError(f"read {len(csv)} of {size} CSV bytes")
        return Encoded(csv, rejected, table)

    def run(self, statement: str, data: bytes | None = None) -> bytes:
        """A statement on this connection (over `data` as its input file): what it
        wrote to the output."""
        self._input(data)
        os.ftruncate(self._out, 0)
        self._con.execute(statement)
        size = os.fstat(self._out).st_size
        return os.pread(self._out, size, 0) if size else b""

    def fetch(self, query: str, data: bytes) -> Any:
        """A query's rows over `data` as its input file, as an Arrow table."""
        self._input(data)
        return _arrow_table(self._con, query)

    def _input(self, data: bytes | None) -> None:
        if data is not None:
            view, offset = memoryview(data), 0
            while offset < len(data):
                offset += os.pwrite(self._in, view[offset:], offset)
            os.ftruncate(self._in, len(data))

    @property
    def input_path(self) -> str:
        return f"/proc/self/fd/{self._in}"

    def _write_input(self, parts: Sequence[Lines]) -> list[Buffer]:
        """The input file's bytes: `parts`' NDJSON, in the buffers returned."""
        offset = 0
        buffers = [buffer for part in parts for buffer in part.ndjson()]
        for buffer in buffers:  # a block as it was read: no copy in Python
            view = memoryview(buffer)
            while view:
                written = os.pwrite(self._in, view, offset)
                offset += written
                view = view[written:]
        # cut only what the last batch left beyond this one: writing over the
        # pages already there costs a third of freeing them and getting new ones
        os.ftruncate(self._in, offset)
        return buffers

    def close(self) -> None:
        self._con.close()
        os.close(self._in)
        os.close(self._out)
