"""The native CSV encoder's column mapping (csv_native.py's `NativeCsvEncoder` takes
these methods): a batch's rows by the C typed encoder (mapping/typed_c.py) or the
typed query (mapping/sql_typed.py) for the records they are sure of, and the full
mapping query (mapping/sql.py) for the rest, put back in the records' order
(csv_rows.py); the records whose values do not convert left out with their reasons."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import orjson

from streamer.core.duckdb_c import duckdb
from streamer.core.lines import Lines
from streamer.mapping.sql import MappingQuery
from streamer.mapping.sql_typed import TypedMappingQuery
from streamer.sinks.stage.batch_scan import Buffer
from streamer.sinks.stage.csv_python import CsvEncoder
from streamer.sinks.stage.csv_rows import ROW_END, interleave, split_rows
from streamer.sinks.stage.typed import Target

# DuckDB's JSON reader holds buffers of `maximum_object_size` (16 MiB by
# default): sized to the batch's largest record instead, at least this
MIN_OBJECT_SIZE = 1024 * 1024
# the C typed encoder's unsure records up to this many go to the per-record encoder,
# more to the typed and full queries over them.  Measured (2026-12-05, load 24, the
# bench's 20-column mapping, a 20,000-record batch, CPU): per record about 0.12 ms
# each; the queries about 25 ms whatever their rows: 20 unsure 74 against 91 ms,
# 100: 84 / 91, 300: 108 / 93, 1,000: 189 / 99
PER_RECORD_MAX = 200


def object_size(parts: Sequence[Lines]) -> int:
    """The smallest power of two >= MIN_OBJECT_SIZE that holds every record."""
    return max(MIN_OBJECT_SIZE, 1 << max(part.longest for part in parts).bit_length())


class _Mapped(NamedTuple):
    """A mapped batch: rows written, records left out (index, reason), and the rows
    if not in the output file: merged in Python (`csv`) or fetched (`table`)."""

    rows: int
    rejected: list[tuple[int, str]]
    csv: bytes | None = None
    table: Any = None


def _merged(kept: list[bytes], unsure: list[int], placed: list[bytes],
            rejected: list[tuple[int, str]]) -> _Mapped:
    """`kept` rows and the `placed` rows of the records `unsure` (indexes in the batch,
    ascending) but those `rejected` (index in `unsure`, reason), in the records' order."""
    rejected = [(unsure[index], reason) for index, reason in rejected]
    left_out = {index for index, _ in rejected}
    # a placed row's place: its record's index less the records left out before it
    positions, before = [], 0
    for index in unsure:
        if index in left_out:
            before += 1
        else:
            positions.append(index - before)
    return _Mapped(len(kept) + len(placed), rejected, interleave(kept, placed, positions))


class NativeEncodeError(Exception):
    """A batch the native encoder leaves to the per-record one."""


class MappedEncoding:
    """The mapped path of `NativeCsvEncoder` (its attributes and query helpers)."""

    _mapping: MappingQuery | None
    _typed: TypedMappingQuery | None
    typed_c: Any  # mapping/typed_c.py's plan, or None
    _python: CsvEncoder | None  # with typed_c: the per-record encoder, for a few records
    _in: int
    _con: Any
    _out: int
    csv: Target
    typed_batches: int
    split_batches: int
    c_batches: int
    _statement: Callable[[str, int, Callable[[], str]], str]
    _reader: Callable[[int], str]
    _execute: Callable[[str, Target], tuple[int, Any]]
    _write_input: Callable[[Sequence[Lines]], list[Buffer]]

    def _mapped(self, parts: Sequence[Lines], records: int, target: Target) -> _Mapped:
        """For CSV the typed query, and the full mapping for the records it is not
        sure of; other targets the full mapping."""
        mapping, typed, size = self._mapping, self._typed, object_size(parts)
        assert mapping is not None
        if typed is not None and target is self.csv:
            try:
                rows = self._con.execute(self._statement("typed", size, lambda: (
                    f"{self.csv.head}{typed.rows(self._typed_reader(typed, size))}"
                    f"{self.csv.tail}")
                )).fetchone()[0]
            except duckdb.Error as exc:  # a path through a value of another kind, a repeated key
                if "duplicate key" in str(exc):
                    # the full query would take a repeated key's first value, the
                    # per-record encoder (orjson) its last: the batch goes per record
                    raise NativeEncodeError("a repeated key in a mapped object") from None
                rows = -1
            if rows == records:
                self.typed_batches += 1
                return _Mapped(rows, [])
            # a few records it is not sure of: the full mapping for those only
            if rows >= records // 2:
                merged = self._mapped_rest(parts, records, rows, typed, size)
                if merged is not None:
                    self.split_batches += 1
                    return merged
            os.ftruncate(self._out, 0)
        return self._full_mapping(size, records, target)

    def _full_mapping(self, size: int, records: int, target: Target) -> _Mapped:
        """The full mapping query over the input file's `records` records."""
        mapping = self._mapping
        assert mapping is not None
        if target is self.csv:
            rows, table = self._con.execute(self._rows_statement(size)).fetchone()[0], None
        else:
            rows, table = self._execute(
                f"{target.head}{mapping.rows(self._reader(size))}{target.tail}", target)
        return _Mapped(rows, [] if rows == records else self._rejects(size), table=table)

    def _rows_statement(self, size: int) -> str:
        """The full mapping's CSV rows, prepared."""
        mapping = self._mapping
        assert mapping is not None
        return self._statement("rows", size, lambda: (
            f"{self.csv.head}{mapping.rows(self._reader(size))}{self.csv.tail}"))

    def _rejects(self, size: int) -> list[tuple[int, str]]:
        """(index, reason) of the input file's records the full mapping leaves out."""
        mapping = self._mapping
        assert mapping is not None
        return [(int(index), reason) for index, reason in self._con.execute(
            self._statement("rejects", size, lambda: mapping.rejects(self._reader(size)))
        ).fetchall()]

    def _mapped_rest(self, parts: Sequence[Lines], records: int, rows: int,
                     typed: TypedMappingQuery, size: int) -> _Mapped | None:
        """The typed query's `rows` (in the output file) and the full mapping's
        rows for the records it left out, in the records' order; None when the
        rows cannot be told apart (a cell holding a line end)."""
        kept = split_rows(os.pread(self._out, os.fstat(self._out).st_size, 0), rows)
        if kept is None:
            return None
        unsure = [index for (index,) in self._con.execute(self._statement(
            "unsure", size, lambda: typed.unsure_rows(self._typed_reader(typed, size))
        )).fetchall()]
        if len(unsure) != records - rows:  # never seen
            return None
        return self._place_rest(parts, kept, unsure, size)

    def _place_rest(self, parts: Sequence[Lines], kept: list[bytes], unsure: list[int],
                    size: int) -> _Mapped | None:
        """The rows `kept` and the full mapping's rows for the records `unsure`
        (indexes, ascending), in the records' order; None when the full mapping's
        rows cannot be told apart (the input file then holds the batch)."""
        raws = [raw for part in parts for raw in part.raws]
        self._write_input([Lines.of([raws[index] for index in unsure])])
        os.ftruncate(self._out, 0)
        # the reasons first: most often every record left out is one to reject
        # (each query costs tens of ms to plan, whatever its rows)
        rejected = self._rejects(size)
        placed: list[bytes] | None = []
        if len(rejected) < len(unsure):
            done = self._con.execute(self._rows_statement(size)).fetchone()[0]
            placed = split_rows(os.pread(self._out, os.fstat(self._out).st_size, 0), done)
            if placed is None or done + len(rejected) != len(unsure):
                self._write_input(parts)  # for the full mapping over the batch
                return None
        return _merged(kept, unsure, placed, rejected)

    def _c_mapped(self, parts: Sequence[Lines], records: int) -> _Mapped | None:
        """The C typed encoder's rows, and those of the records it is not sure of
        (the per-record encoder's for a few, else the typed and full queries');
        None when the SQL is to map the batch (the input file may hold another
        batch): most records unsure, or rows it cannot tell apart."""
        assert self.typed_c is not None
        try:
            csv, unsure, seen = self.typed_c.encode(
                [buffer for part in parts for buffer in part.ndjson()])
        except ValueError:  # a line not ended by "\n" (never seen)
            return None
        if seen != records:  # never seen
            return None
        if not unsure:
            self.c_batches += 1
            self.typed_batches += 1
            return _Mapped(records, [], csv)
        # many unsure: the SQL's typed query is surer of them (exponents, say)
        if len(unsure) > records // 2:
            return None
        kept = split_rows(csv, records - len(unsure))
        if kept is None:  # never: the C writes no line end in a cell
            return None
        raws = [raw for part in parts for raw in part.raws]
        rest = [raws[index] for index in unsure]
        mapped = (self._per_record(rest) if len(rest) <= PER_RECORD_MAX else None) \
            or self._typed_subset(rest)
        if mapped is None:
            return None
        self.c_batches += 1
        self.split_batches += 1
        return _merged(kept, unsure, *mapped)

    def _per_record(self, raws: list[bytes]) -> tuple[list[bytes], list[tuple[int, str]]] | None:
        """The per-record encoder's row of each record (without its line end), and
        the records it leaves out (index in `raws`, reason); None for a line that is
        not an object (never seen: the reader takes only objects)."""
        python = self._python
        assert python is not None
        placed, rejected = [], []
        for index, raw in enumerate(raws):
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return None
            if type(record) is not dict:
                return None
            row = python.encode([([record], False)])
            if python.rejected:
                rejected.append((index, python.rejected[0][1]))
            else:
                placed.append(row[:-len(ROW_END)])
        return placed, rejected

    def _typed_subset(self, raws: list[bytes]) -> tuple[list[bytes], list[tuple[int, str]]] | None:
        """The SQL's rows for these records (the typed query's and the full one's),
        and the records it leaves out; None when its rows cannot be told apart."""
        subset = [Lines.of(raws)]
        self._write_input(subset)
        os.ftruncate(self._out, 0)
        counted = self.typed_batches, self.split_batches
        mapped = self._mapped(subset, len(raws), self.csv)
        self.typed_batches, self.split_batches = counted  # the C's batch, counted once
        csv = mapped.csv if mapped.csv is not None else os.pread(
            self._out, os.fstat(self._out).st_size, 0)
        placed = split_rows(csv, mapped.rows)
        return None if placed is None else (placed, mapped.rejected)

    def _typed_reader(self, typed: TypedMappingQuery, size: int) -> str:
        return (f"read_json('/proc/self/fd/{self._in}', format = 'newline_delimited', "
                f"records = true, columns = {typed.schema()}, maximum_object_size = {size})")
