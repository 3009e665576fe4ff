"""CSV rows from decoded records, one record at a time in Python (the native
encoder's fallback, and its reference: both give the same bytes)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any, TextIO

from streamer.core.json_dumps import dumps
from streamer.mapping.spec import ColumnSpec, all_plain
from streamer.mapping.values import Bad, RecordMapper


def is_plain(raws: list[bytes]) -> bool:
    """True when these records' values are only strings, numbers and nulls (no
    booleans, arrays or nested objects): a few byte scans, run in C."""
    block = b"\n".join(raws)
    return (block.count(b"{") == len(raws) and b"[" not in block
            and b"true" not in block and b"false" not in block)


def cell(value: Any, null_value: str) -> Any:
    """A CSV cell: scalars as they are, null as `null_value`, the rest as JSON text."""
    if value is None:
        return null_value
    kind = type(value)
    if kind is str or kind is int or kind is float:
        return value
    return dumps(value).decode()


class CsvEncoder:
    """Rows in `columns` order; nested values and booleans as JSON text."""

    def __init__(self, specs: Sequence[ColumnSpec | str], *, separator: str = ",",
                 quote: str = '"', null_value: str = "") -> None:
        specs = [ColumnSpec.model_validate(c) for c in specs]
        self.columns = tuple(c.name for c in specs)
        # a mapping (any entry besides a plain field name): cells per record, and
        # the records whose values do not convert set aside with the reason
        self._mapper = None if all_plain(specs) else RecordMapper(specs)
        self.rejected: list[tuple[int, str]] = []
        self._null = null_value
        self._dialect = {"delimiter": separator, "quotechar": quote, "doublequote": True,
                         "lineterminator": "\r\n", "quoting": csv.QUOTE_MINIMAL}
        getter = itemgetter(*self.columns)
        self._getter = getter if len(self.columns) > 1 else (lambda r: (getter(r),))

    def header(self) -> bytes:
        buf = io.StringIO()
        csv.writer(buf, **self._dialect).writerow(self.columns)
        return buf.getvalue().encode()

    def _row(self, record: dict[str, Any]) -> list[Any]:
        get, null = record.get, self._null
        return [cell(get(c), null) for c in self.columns]

    def write(self, out: TextIO,
              record_lists: Iterable[tuple[list[dict[str, Any]], bool]]) -> None:
        """Write lists of records, each with its `plain` flag, as CSV rows; with a
        mapping, `rejected` names the records (index over all lists) left out."""
        writer = csv.writer(out, **self._dialect)
        self.rejected = []
        if self._mapper is not None:
            self._write_mapped(writer, record_lists)
            return
        native_nulls = self._null == ""
        for records, plain in record_lists:
            if plain and native_nulls:
                # csv writes None as an empty field, and plain records hold only
                # str/int/float/None: the whole list is encoded in C.
                pending = iter(records)
                try:
                    writer.writerows(map(self._getter, pending))
                    continue
                except KeyError:
                    # a record lacks a column; rows before it are written, and
                    # `pending` holds the ones after it
                    records = records[len(records) - sum(1 for _ in pending) - 1:]
            writer.writerows(map(self._row, records))

    def _write_mapped(self, writer: Any,
                      record_lists: Iterable[tuple[list[dict[str, Any]], bool]]) -> None:
        cells, null, index = self._mapper.cells, self._null, 0
        rows = []
        for records, _ in record_lists:
            for record in records:
                try:
                    rows.append(cells(record, null))
                except Bad as exc:
                    self.rejected.append((index, str(exc)))
                index += 1
        writer.writerows(rows)

    def encode(self, record_lists: Iterable[tuple[list[dict[str, Any]], bool]]) -> bytes:
        buf = io.StringIO()
        self.write(buf, record_lists)
        return buf.getvalue().encode()
