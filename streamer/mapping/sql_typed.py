"""The mapping's fast query: DuckDB's JSON reader takes each path's value as text
in one pass (a typed `read_json` schema: nested paths are struct fields and list
items), and the cells are computed from that text with a few casts.  A value
only double columns read is taken as its JSON text: most numbers are then their
own cell, proven by a parse and a length (no text -> double -> text round trip).

It is exact only for values in the forms it recognises; a row with any other
value (a string where a number is expected, `"+12"`, a timestamp that is not
`YYYY-MM-DDTHH:MM:SS[.f][zone]`, an epoch with a fraction, a missing required
value, an object in a string column...) is left out (`unsure_rows` names them),
and a path through a value of the wrong kind or a repeated key fails the query.
The caller runs `sql.MappingQuery` on the rows left out (on the whole batch when
the query failed): it gives every record's cells or reason.  So each row this
query writes is the one `MappingQuery` writes, and it decides nothing about bad
values.

Mappings it cannot read in one schema (`.` or json columns, one path both a leaf
and a container, object keys equal but for case, `parse` patterns) have none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from streamer.mapping.paths import Path
from streamer.mapping.spec import ColumnSpec
from streamer.mapping.sql import DOUBLE_RE, sql_string
from streamer.mapping.timestamps import END_NS, EPOCH_UNITS, MIN_NS
from streamer.mapping.values import converter, json_text, text

# the ISO 8601 texts read here; any other form (no seconds, `,` fractions, `+02`
# or `+0200` zones, hour 24...) goes to MappingQuery.  DuckDB's TIMESTAMPTZ cast
# then checks the date (leap days) and applies the offset.
FAST_ISO = (r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[T ]"
            r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
            r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?")
# A double's JSON text (`{s}`, as DuckDB's reader writes the parsed value: a
# number in its shortest round-trip digits, a string quoted) that is the cell
# Python writes (`repr(float)`), once DOUBLE_CELL gives an integer its `.0`:
# a number (a string's quote, `true`, `NaN`... do not read as one) of at most 15
# characters (at most 14 digits: the one decimal of so few digits that reads as
# that double, so the shortest; an integer below 1e15, exact) between 1e-4 and
# 1e14, where both Python and DuckDB's reader (yyjson: fixed below 1e21, down
# to 1e-6) write fixed notation.  Anything else (0 too) takes the round trip.
DOUBLE_PROVEN = "strlen({s}) <= 15 AND abs(TRY_CAST({s} AS DOUBLE)) BETWEEN 0.0001 AND 1e14"
DOUBLE_CELL = "CASE WHEN contains({s}, '.') THEN {s} ELSE {s} || '.0' END"
US = 1000
# (parse, format) -> the C function (streamer_ts.c) that gives the whole cell
C_TEXT = {("iso8601", "epoch_s"): "streamer_iso_epoch_s",
          ("iso8601", "epoch_ms"): "streamer_iso_epoch_ms",
          ("iso8601", "epoch_us"): "streamer_iso_epoch_us",
          ("epoch_s", "iso8601"): "streamer_epoch_s_iso"}
MIN_US, END_US = MIN_NS // US, END_NS // US
SECONDS = "%Y-%m-%dT%H:%M:%S"


@dataclass
class _Node:
    """A path step's value in the schema: a leaf (VARCHAR, or JSON for a value
    only double columns read), a struct or a list."""

    kind: str = ""  # "leaf", "struct" or "list"
    fields: dict[str, _Node] = field(default_factory=dict)
    item: _Node | None = None
    leaf_type: str = "VARCHAR"

    def add(self, steps: Path) -> bool:
        """Place `steps` under this node; False when it conflicts with another path."""
        if not steps:
            if self.kind not in ("", "leaf"):
                return False
            self.kind = "leaf"
            return True
        step, rest = steps[0], steps[1:]
        if type(step) is int:
            if self.kind not in ("", "list"):
                return False
            self.kind = "list"
            self.item = self.item or _Node()
            return self.item.add(rest)
        if self.kind not in ("", "struct") or step == "":
            return False
        self.kind = "struct"
        same = [k for k in self.fields if k.lower() == step.lower()]
        if same and same != [step]:  # DuckDB's struct fields ignore case
            return False
        return self.fields.setdefault(step, _Node()).add(rest)

    def at(self, steps: Path) -> _Node:
        """The node `steps` below this one (placed by `add`)."""
        node = self
        for step in steps:
            next_node = node.item if type(step) is int else node.fields[str(step)]
            assert next_node is not None
            node = next_node
        return node

    def type(self) -> str:
        if self.kind == "leaf":
            return self.leaf_type
        if self.kind == "list":
            assert self.item is not None
            return f"{self.item.type()}[]"
        return "STRUCT(" + ", ".join(f"{_identifier(k)} {n.type()}"
                                     for k, n in self.fields.items()) + ")"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _access(steps: Path) -> str:
    expr = _identifier(str(steps[0]))
    for step in steps[1:]:
        expr = (f"list_extract({expr}, {step + 1})" if type(step) is int
                else f"struct_extract({expr}, {sql_string(step)})")
    return expr


def floordiv(value: str, divisor: int) -> str:
    """`value` (a column name) divided by `divisor` > 0, rounded down; no
    intermediate value leaves BIGINT's range."""
    return f"({value} // {divisor} - CASE WHEN {value} % {divisor} < 0 THEN 1 ELSE 0 END)"


def _mod(value: str, divisor: int) -> str:
    """`value` (a column name) modulo `divisor` > 0, in [0, divisor)."""
    return f"(({value} % {divisor} + {divisor}) % {divisor})"


def _fraction(ns: str) -> str:
    """ISO 8601 fraction digits of `ns` (0-999999999): none, 3, 6 or 9."""
    ns = f"({ns})"
    return (f"CASE WHEN {ns} = 0 THEN '' "
            f"WHEN {ns} % 1000000 = 0 THEN '.' || lpad(CAST({ns} // 1000000 AS VARCHAR), 3, '0') "
            f"WHEN {ns} % 1000 = 0 THEN '.' || lpad(CAST({ns} // 1000 AS VARCHAR), 6, '0') "
            f"ELSE '.' || lpad(CAST({ns} AS VARCHAR), 9, '0') END")


@dataclass
class _Column:
    cell: str  # the cell (text or a number), NULL when missing
    # a present leaf converts as MappingQuery would (NULL: it does not) ...
    present_ok: str | None = None
    casts: list[str] = field(default_factory=list)  # values of the leaf text
    # stages before the casts: the cell when a cheap test proves it, then the
    # text the casts read for the other rows
    proven: list[str] = field(default_factory=list)
    decoded: list[str] = field(default_factory=list)
    # ... or, shorter to plan: TRUE when a present leaf does not, else FALSE or NULL
    # (NULL when missing)
    unsure: str | None = None
    # ... or, cheaper to run: TRUE when a present leaf converts, else FALSE or NULL
    # (a filter tests an AND's or an OR's terms only on the rows still open)
    sure: str | None = None


# DuckDB plans every expression of every query, each batch: the query is kept to
# a few projections (proven cells, decoded texts, casts), one of cells and one
# filter, written with few terms (a COPY's fixed cost is as much as its rows'
# cost at a few thousand rows).  The filter is a conjunction of each column's
# "sure": DuckDB then tests a term only on the rows the terms before left open.
class TypedMappingQuery:
    """`rows(reader)`: the cells of the records whose values it is sure of."""

    def __init__(self, columns: Sequence[ColumnSpec], null_value: str,
                 schema: dict[str, _Node], json_leaves: frozenset[Path] = frozenset(),
                 c_functions: bool = False) -> None:
        self._schema = schema
        leaves: dict[Path, str] = {}
        proven: list[str] = []
        decoded: list[str] = []
        casts: list[str] = []
        cells: list[str] = []
        sure: list[str] = []  # each TRUE for a row it is sure of
        null = sql_string(null_value)
        for i, spec in enumerate(columns):
            if spec.value is not None:
                cell, text_cell = _fixed(spec, spec.value), True
            else:
                leaf = leaves.setdefault(spec.steps, f"s{len(leaves)}")
                column = _column(spec, leaf, f"v{i}", spec.steps in json_leaves, c_functions)
                proven += column.proven
                decoded += column.decoded
                casts += column.casts
                if column.sure is not None:
                    sure.append(column.sure if spec.required
                                else f"({column.sure}) OR {leaf} IS NULL")
                else:
                    present = (column.unsure if column.unsure is not None else
                               f"{leaf} IS NOT NULL AND NOT coalesce({column.present_ok}, false)")
                    unsure = f"{leaf} IS NULL OR ({present})" if spec.required else present
                    sure.append(f"NOT coalesce({unsure}, false)")
                cell, text_cell = column.cell, spec.type in ("raw", "string")
                if spec.default is not None:
                    cell = (f"CASE WHEN {leaf} IS NULL THEN {_fixed(spec, spec.default)} "
                            f"ELSE {cell} END")
                    text_cell = True
            if null_value != "":
                cell = f"COALESCE(CAST({cell} AS VARCHAR), {null})"
            elif text_cell:
                cell = f"NULLIF({cell}, '')"
            cells.append(cell)
        # a JSON leaf is compared with text: as VARCHAR (the same bytes)
        self._leaves = ", ".join(
            f"CAST({_access(p)} AS VARCHAR) AS {name}" if p in json_leaves
            else f"{_access(p)} AS {name}" for p, name in leaves.items())
        self._stages = [stage for stage in (proven, decoded, casts) if stage]
        self._cells = ", ".join(cells)
        self._sure = " AND ".join(f"({s})" for s in sure) or "true"

    @classmethod
    def of(cls, columns: Sequence[ColumnSpec], null_value: str,
           c_functions: bool = False) -> TypedMappingQuery | None:
        """None when the mapping cannot be read in one typed schema.  `c_functions`:
        the timestamps use the C functions (`c_functions.py`; loaded on the
        connection that runs the query) where they apply."""
        root = _Node()
        kinds: dict[Path, set[str]] = {}
        for spec in columns:
            if spec.value is not None:
                continue
            if (not spec.steps or spec.type == "json" or (
                    spec.type == "timestamp" and spec.parse != "iso8601"
                    and spec.parse not in EPOCH_UNITS)):
                return None
            if not root.add(spec.steps):
                return None
            kinds.setdefault(spec.steps, set()).add(spec.type)
        if not root.fields:
            return None
        # a value only double columns read is read as its JSON text (DuckDB's
        # reader writes a number's JSON faster than its VARCHAR, and a JSON
        # string is told from a number by its quote)
        json_leaves = frozenset(steps for steps, types in kinds.items() if types == {"double"})
        for steps in json_leaves:
            root.at(steps).leaf_type = "JSON"
        return cls(columns, null_value, root.fields, json_leaves, c_functions)

    def schema(self) -> str:
        """read_json's `columns` argument."""
        return "{" + ", ".join(f"{sql_string(k)}: {sql_string(n.type())}"
                               for k, n in self._schema.items()) + "}"

    def _values(self, reader: str, numbered: bool) -> str:
        number = ", row_number() OVER () - 1 AS ix" if numbered else ""
        query = f"SELECT {self._leaves}{number} FROM {reader}"
        for stage in self._stages:
            query = f"SELECT *, {', '.join(stage)} FROM ({query})"
        return query

    def rows(self, reader: str) -> str:
        """The rows over `reader`, a read_json call with `schema()` as its columns."""
        return f"SELECT {self._cells} FROM ({self._values(reader, False)}) WHERE {self._sure}"

    def unsure_rows(self, reader: str) -> str:
        """The indexes (from 0, in order) of the records `rows` leaves out."""
        return (f"SELECT ix FROM ({self._values(reader, True)}) "
                f"WHERE ({self._sure}) IS NOT TRUE ORDER BY ix")


def _fixed(spec: ColumnSpec, given: object) -> str:
    typed = converter(spec)(given)
    return sql_string(json_text(typed) if spec.type == "json" else text(typed))


def _column(spec: ColumnSpec, s: str, v: str, json_leaf: bool = False,
            c_functions: bool = False) -> _Column:
    """How a present value (`s`: its text as DuckDB's JSON reader gives it, strings
    unquoted; with `json_leaf` its JSON text) becomes the cell MappingQuery gives,
    and when that is sure."""
    kind = spec.type
    if json_leaf:
        assert kind == "double"
        return _json_double(s, v)
    if kind in ("raw", "string"):
        # an object or an array reads as its JSON text: left to MappingQuery
        return _Column(s, unsure=f"starts_with({s}, '{{') OR starts_with({s}, '[')")
    if kind == "integer":
        # only the canonical text of a 64-bit integer: not "+1", "01", "1.0", " 1"
        return _Column(s, unsure=f"CAST(TRY_CAST({s} AS BIGINT) AS VARCHAR) IS DISTINCT FROM {s}")
    if kind == "double":
        # a number reads as DuckDB writes it: most are their own cell
        # (the text test only where it is needed: a CASE runs a branch on its rows only)
        return _Column(v, f"{v} NOT IN ('inf', '-inf', 'nan', '-nan') AND CASE WHEN {v} = {s} "
                       f"THEN true ELSE regexp_full_match({s}, {sql_string(DOUBLE_RE)}) END",
                       [f"CAST(TRY_CAST({s} AS DOUBLE) AS VARCHAR) AS {v}"])
    if kind == "boolean":
        return _Column(s, unsure=f"{s} NOT IN ('true', 'false')")
    if kind == "timestamp":
        return _timestamp(spec, s, v, c_functions)
    raise AssertionError(kind)


def _json_double(s: str, v: str) -> _Column:
    """A double column's cell from the value's JSON text `s`.

    Most numbers are proven their own cell by a few byte tests (DOUBLE_PROVEN):
    no text -> double -> text round trip.  The other values (strings, exponents,
    long or tiny numbers, anything else) take the VARCHAR leaf's round trip, a
    JSON string decoded first."""
    proven = f"CASE WHEN {DOUBLE_PROVEN.format(s=s)} THEN {DOUBLE_CELL.format(s=s)} END"
    unquoted = (f"CASE WHEN {v}f IS NULL THEN CASE WHEN starts_with({s}, '\"') "
                f"THEN json_extract_string({s}, '$') ELSE {s} END END")
    checked = (f"{v} NOT IN ('inf', '-inf', 'nan', '-nan') AND CASE WHEN {v} = {v}u "
               f"THEN true ELSE regexp_full_match({v}u, {sql_string(DOUBLE_RE)}) END")
    return _Column(f"coalesce({v}f, {v})", sure=f"{v}f IS NOT NULL OR ({checked})",
                   casts=[f"CAST(TRY_CAST({v}u AS DOUBLE) AS VARCHAR) AS {v}"],
                   proven=[f"{proven} AS {v}f"], decoded=[f"{unquoted} AS {v}u"])


def _timestamp(spec: ColumnSpec, s: str, v: str, c_functions: bool = False) -> _Column:
    if c_functions and (spec.parse, spec.format) in C_TEXT:
        # one C function: the cell's text, NULL when it is not sure
        return _Column(v, casts=[f"{C_TEXT[spec.parse, spec.format]}({s}) AS {v}"],
                       sure=f"{v} IS NOT NULL")
    if spec.parse in EPOCH_UNITS:
        # integers only (in the unit `unit`: 10**unit ns), in range
        unit = EPOCH_UNITS[spec.parse]
        low, end = MIN_NS // 10 ** unit, END_NS // 10 ** unit
        unsure = f"CAST({v} AS VARCHAR) IS DISTINCT FROM {s} OR {v} < {low} OR {v} >= {end}"
        casts = [f"TRY_CAST({s} AS BIGINT) AS {v}"]
        if spec.format == "iso8601":
            if unit == 9:
                cell = f"strftime(make_timestamp({v} * 1000000), '{SECONDS}Z')"
            else:
                us = f"{v} * {10 ** (unit - 3)}" if unit >= 3 else floordiv(v, 10 ** (3 - unit))
                ns = f"{_mod(v, 10 ** (9 - unit))} * {10 ** unit}"
                cell = (f"strftime(make_timestamp({us}), '{SECONDS}') || "
                        f"({_fraction(ns)}) || 'Z'")
            return _Column(cell, casts=casts, unsure=unsure)
        out = EPOCH_UNITS[spec.format]
        if out == unit:
            cell = s
        elif out < unit:
            scaled = f"CAST({v} AS HUGEINT)" if out == 0 else v
            cell = f"CAST({scaled} * {10 ** (unit - out)} AS VARCHAR)"
        else:
            cell = f"CAST({floordiv(v, 10 ** (out - unit))} AS VARCHAR)"
        return _Column(cell, casts=casts, unsure=unsure)
    # ISO 8601: microseconds from DuckDB, the 7th-9th fraction digits by hand
    us, extra = f"{v}u", f"{v}x"
    casts = [f"streamer_iso_us({s}) AS {us}" if c_functions else
             f"epoch_us(TRY_CAST({s} AS TIMESTAMPTZ)) AS {us}",
           # fraction of 7+ digits: no zone character among its first 7
           f"CASE WHEN length({s}) >= 27 AND substring({s}, 20, 1) = '.' "
           f"AND TRY_CAST(substring({s}, 21, 7) AS BIGINT) IS NOT NULL "
           f"THEN CAST(rpad(regexp_extract(substring({s}, 27, 3), '^[0-9]*'), 3, '0') "
           f"AS BIGINT) ELSE 0 END AS {extra}"]
    form = f"{us} IS NOT NULL" if c_functions else f"regexp_full_match({s}, {sql_string(FAST_ISO)})"
    ok = f"{form} AND {us} >= {MIN_US} AND {us} < {END_US}"
    out = spec.format
    if out == "iso8601":
        ns = f"{_mod(us, 1000000)} * 1000 + {extra}"
        cell = f"strftime(make_timestamp({us}), '{SECONDS}') || ({_fraction(ns)}) || 'Z'"
    elif out == "epoch_ns":
        cell = f"CAST(CAST({us} AS HUGEINT) * 1000 + {extra} AS VARCHAR)"
    elif out == "epoch_us":
        cell = f"CAST({us} AS VARCHAR)"
    else:
        cell = f"CAST({floordiv(us, 10 ** (EPOCH_UNITS[out] - 3))} AS VARCHAR)"
    return _Column(cell, ok, casts)
