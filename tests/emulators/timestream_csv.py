"""Timestream batch load: CSV parsing and data-model mapping (pure functions).

Failure classes (how the emulator counts them):
- file failure: UTF-8 BOM, not UTF-8, empty / no header, malformed quoting, a column the
  data model names is missing from the header. Nothing from that file is ingested.
- parse failure: a row with the wrong number of columns, a time that is not a
  non-negative integer, a measure value that does not convert to its MeasureValueType.
- ingestion failure (decided by the table, see timestream.py): no measure values,
  missing measure name, a conflicting record with an equal or higher version.
TIMESTAMP measure values are integers in the data model's TimeUnit.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from typing import Any

BOM = b"\xef\xbb\xbf"
NS_PER_UNIT = {"SECONDS": 10**9, "MILLISECONDS": 10**6, "MICROSECONDS": 10**3,
               "NANOSECONDS": 1}
VALID_SEPARATORS = (",", "|", ";", "\t", " ")
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
VARCHAR_MAX_BYTES = 2048
INTEGER = re.compile(r"-?[0-9]+")


class RowError(ValueError):
    """A row that cannot become a record; `kind` is 'parse' or 'ingestion'."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass
class MeasureSpec:
    source: str
    target: str
    value_type: str


@dataclass
class RecordSpec:
    """One record produced per CSV row (MixedMeasureMappings may give several)."""

    measure_name: str | None  # fixed name; None -> taken from MeasureNameColumn
    measures: list[MeasureSpec]
    only_for_name: str | None = None  # mixed mappings + MeasureNameColumn filter


@dataclass
class DataModelSpec:
    time_column: str
    time_unit: str
    dimensions: list[tuple[str, str]]  # (source column, destination column)
    records: list[RecordSpec]
    measure_name_column: str | None

    def columns(self) -> list[str]:
        cols = [self.time_column, *(src for src, _ in self.dimensions)]
        if self.measure_name_column:
            cols.append(self.measure_name_column)
        cols.extend(m.source for r in self.records for m in r.measures)
        return list(dict.fromkeys(cols))


def build_data_model(dm: dict[str, Any]) -> DataModelSpec:
    """Semantic checks beyond the service model; raises ValueError with the reason."""
    time_column = dm.get("TimeColumn")
    if not time_column:
        raise ValueError("DataModel.TimeColumn is required")
    dims = [(d.get("SourceColumn"), d.get("DestinationColumn") or d.get("SourceColumn"))
            for d in dm.get("DimensionMappings") or []]
    if not dims or any(not src for src, _ in dims):
        raise ValueError("DataModel.DimensionMappings needs at least one SourceColumn")
    name_col = dm.get("MeasureNameColumn")
    multi, mixed = dm.get("MultiMeasureMappings"), dm.get("MixedMeasureMappings")
    if bool(multi) == bool(mixed):
        raise ValueError("Exactly one of MultiMeasureMappings or MixedMeasureMappings "
                         "is required")
    records: list[RecordSpec] = []
    if multi:
        name = multi.get("TargetMultiMeasureName")
        if not name and not name_col:
            raise ValueError("MultiMeasureMappings needs TargetMultiMeasureName or "
                             "DataModel.MeasureNameColumn")
        records.append(RecordSpec(None if name_col else name,
                                  _attributes(multi.get("MultiMeasureAttributeMappings"))))
    for mapping in mixed or []:
        vtype = mapping.get("MeasureValueType")
        name = mapping.get("TargetMeasureName") or mapping.get("MeasureName")
        if vtype == "MULTI":
            if not name:
                raise ValueError("A MULTI MixedMeasureMapping needs MeasureName or "
                                 "TargetMeasureName")
            measures = _attributes(mapping.get("MultiMeasureAttributeMappings"))
        else:
            source = mapping.get("SourceColumn")
            if not source:
                raise ValueError("A scalar MixedMeasureMapping needs SourceColumn")
            name = name or source
            measures = [MeasureSpec(source, source, vtype)]
        only = mapping.get("MeasureName") if name_col else None
        records.append(RecordSpec(name, measures, only_for_name=only))
    return DataModelSpec(time_column, dm.get("TimeUnit") or "MILLISECONDS", dims, records,
                         name_col)


def _attributes(mappings: list[dict[str, Any]] | None) -> list[MeasureSpec]:
    if not mappings:
        raise ValueError("MultiMeasureAttributeMappings needs at least one mapping")
    out = []
    for m in mappings:
        if not m.get("MeasureValueType"):
            raise ValueError(f"MeasureValueType is required for column {m.get('SourceColumn')}")
        out.append(MeasureSpec(m["SourceColumn"],
                               m.get("TargetMultiMeasureAttributeName") or m["SourceColumn"],
                               m["MeasureValueType"]))
    return out


@dataclass
class CsvSpec:
    separator: str = ","
    quote: str = '"'
    escape: str | None = None
    null_value: str | None = None
    trim: bool = False

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> CsvSpec:
        cfg = cfg or {}
        spec = cls(separator=cfg.get("ColumnSeparator", ","), quote=cfg.get("QuoteChar", '"'),
                   escape=cfg.get("EscapeChar"), null_value=cfg.get("NullValue"),
                   trim=bool(cfg.get("TrimWhiteSpace", False)))
        if spec.separator not in VALID_SEPARATORS:
            raise ValueError(f"ColumnSeparator must be one of {VALID_SEPARATORS!r}")
        if spec.quote == spec.separator:
            raise ValueError("QuoteChar must differ from ColumnSeparator")
        return spec


@dataclass
class Record:
    line: int
    time_ns: int
    measure_name: str | None
    dimensions: dict[str, str]
    measures: dict[str, Any]
    measure_types: dict[str, str]


@dataclass
class FileResult:
    key: str
    size: int
    file_error: str | None = None
    rows: int = 0
    records: list[Record] = field(default_factory=list)
    row_errors: list[tuple[int, RowError]] = field(default_factory=list)


def convert(raw: str, value_type: str, time_unit: str, column: str = "") -> Any:
    try:
        if value_type == "DOUBLE":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
        if value_type in ("BIGINT", "TIMESTAMP"):
            if not INTEGER.fullmatch(raw):
                raise ValueError(raw)
            number = int(raw)
            if not BIGINT_MIN <= number <= BIGINT_MAX:
                raise ValueError(raw)
            return number * NS_PER_UNIT[time_unit] if value_type == "TIMESTAMP" else number
        if value_type == "BOOLEAN":
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        if value_type == "VARCHAR":
            if len(raw.encode()) > VARCHAR_MAX_BYTES:
                raise ValueError("VARCHAR longer than 2048 bytes")
            return raw
    except ValueError:
        raise RowError("parse", f"Cannot convert the value of column {column!r} to "
                                f"{value_type}") from None
    raise RowError("parse", f"Unsupported MeasureValueType {value_type}")


def parse_file(key: str, data: bytes, csv_spec: CsvSpec, model: DataModelSpec) -> FileResult:
    result = FileResult(key=key, size=len(data))
    if data.startswith(BOM):
        result.file_error = "The file starts with a UTF-8 byte order mark (BOM)"
        return result
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        result.file_error = f"The file is not valid UTF-8: {exc}"
        return result
    escape = None if csv_spec.escape == csv_spec.quote else csv_spec.escape
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=csv_spec.separator,
                        quotechar=csv_spec.quote, escapechar=escape, doublequote=True,
                        skipinitialspace=csv_spec.trim, strict=True)
    try:
        _parse_rows(reader, csv_spec, model, result)
    except csv.Error as exc:
        result.file_error = f"Malformed CSV at line {reader.line_num}: {exc}"
        result.records.clear()
        result.row_errors.clear()
    return result


def _parse_rows(reader: Any, csv_spec: CsvSpec, model: DataModelSpec,
                result: FileResult) -> None:
    header = next(reader, None)
    if not header:
        result.file_error = "The file has no header row"
        return
    header = [h.strip() if csv_spec.trim else h for h in header]
    if len(set(header)) != len(header):
        result.file_error = "The header row has duplicate column names"
        return
    missing = [c for c in model.columns() if c not in header]
    if missing:
        result.file_error = f"Columns not found in the header: {', '.join(missing)}"
        return
    index = {name: i for i, name in enumerate(header)}
    for row in reader:
        if not row:
            continue
        result.rows += 1
        line = reader.line_num
        try:
            if len(row) != len(header):
                raise RowError("parse", f"Expected {len(header)} columns, found {len(row)}")
            cells = {name: _cell(row[i], csv_spec) for name, i in index.items()}
            result.records.extend(_records(line, cells, model))
        except RowError as err:
            result.row_errors.append((line, err))


def _cell(raw: str, spec: CsvSpec) -> str | None:
    value = raw.strip() if spec.trim else raw
    if value == "" or (spec.null_value is not None and value == spec.null_value):
        return None
    return value


def _records(line: int, cells: dict[str, str | None], model: DataModelSpec) -> list[Record]:
    raw_time = cells[model.time_column]
    if raw_time is None or not INTEGER.fullmatch(raw_time) or raw_time.startswith("-"):
        raise RowError("parse", f"Invalid value in time column {model.time_column!r}: "
                                f"expected a non-negative epoch integer in {model.time_unit}")
    time_ns = int(raw_time) * NS_PER_UNIT[model.time_unit]
    if time_ns > BIGINT_MAX:
        raise RowError("parse", f"Value in time column {model.time_column!r} is out of range")
    dims = {dst: v for src, dst in model.dimensions if (v := cells[src]) is not None}
    row_name = cells[model.measure_name_column] if model.measure_name_column else None
    out = []
    for spec in model.records:
        if spec.only_for_name is not None and spec.only_for_name != row_name:
            continue
        measures: dict[str, Any] = {}
        types: dict[str, str] = {}
        for m in spec.measures:
            raw = cells[m.source]
            if raw is not None:
                measures[m.target] = convert(raw, m.value_type, model.time_unit, m.source)
                types[m.target] = m.value_type
        name = spec.measure_name if spec.measure_name is not None else row_name
        out.append(Record(line, time_ns, name, dims, measures, types))
    if not out:
        raise RowError("ingestion", f"No measure mapping matches measure name {row_name!r}")
    return out
