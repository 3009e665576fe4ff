"""The mapping as one DuckDB query over a batch's NDJSON: the cells and reasons
`values.RecordMapper` gives, at batch speed.

Each record is parsed once (`json_extract` with the list of every path and its
prefixes); the stages then read the value's JSON type, convert it, parse
timestamps with the regular expressions of `timestamps.py` and do the same
integer nanosecond arithmetic in HUGEINT.  A record with a value that cannot be
converted is left out of the CSV; a second query (run only then) names those
records and their reasons."""

from __future__ import annotations

from collections.abc import Sequence

from streamer.mapping.paths import Path, json_path, show_path
from streamer.mapping.spec import ColumnSpec
from streamer.mapping.timestamps import (
    DAY_NS,
    DECIMAL,
    END_NS,
    EPOCH_UNITS,
    MAX_DIGITS,
    MIN_NS,
    MONTHS,
    text_pattern,
)
from streamer.mapping.values import NOT_SCALAR, converter, json_text, text

INTEGER_RE = "[+-]?[0-9]+"
DOUBLE_RE = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"

MACROS = (  # each after the macros it calls
    "CREATE MACRO streamer_floordiv(a, b) AS "
    "CASE WHEN a >= 0 THEN a // b ELSE -((b - 1 - a) // b) END",
    "CREATE MACRO streamer_dim(y, m) AS CASE WHEN m = 2 THEN CASE WHEN y % 4 = 0 AND "
    "(y % 100 <> 0 OR y % 400 = 0) THEN 29 ELSE 28 END WHEN m IN (4, 6, 9, 11) THEN 30 "
    "ELSE 31 END",
    # days since 1970-01-01 of a valid date (H. Hinnant's days_from_civil, y >= 1)
    "CREATE MACRO streamer_days_of(yy, mp, d) AS (yy // 400) * 146097 "
    "+ (yy % 400) * 365 + (yy % 400) // 4 - (yy % 400) // 100 "
    "+ (153 * mp + 2) // 5 + d - 1 - 719468",
    "CREATE MACRO streamer_days(y, m, d) AS "
    "streamer_days_of((y - CASE WHEN m <= 2 THEN 1 ELSE 0 END), (m + 9) % 12, d)",
    "CREATE MACRO streamer_fraction(f) AS CASE WHEN f = 0 THEN '' "
    "WHEN f % 1000000 = 0 THEN printf('.%03d', f // 1000000) "
    "WHEN f % 1000 = 0 THEN printf('.%06d', f // 1000) ELSE printf('.%09d', f) END",
    # 10**k, exact (k <= 37)
    "CREATE MACRO streamer_clock(r) AS printf('%02d:%02d:%02d', r // 3600000000000, "
    "r // 60000000000 % 60, r // 1000000000 % 60) || streamer_fraction(r % 1000000000)",
    f"CREATE MACRO streamer_iso_of(dd, n) AS CAST(DATE '1970-01-01' + CAST(dd AS INTEGER) "
    f"AS VARCHAR) || 'T' || streamer_clock(n - dd * {DAY_NS}) || 'Z'",
    f"CREATE MACRO streamer_iso(n) AS streamer_iso_of(streamer_floordiv(n, {DAY_NS}), n)",
    "CREATE MACRO streamer_pow10(k) AS CAST(rpad('1', CAST(k AS INTEGER) + 1, '0') AS HUGEINT)",
    # JSON text that orjson would write otherwise (nested: csv_native's macro)
    "CREATE MACRO streamer_json_differs(c) AS CASE WHEN c IS NULL THEN false "
    "WHEN (c >= '[' AND c < ']') OR (c >= '{' AND c < '|') THEN streamer_nested_differs(c) "
    r"""WHEN c >= '"' AND c < '#' THEN regexp_matches(c, '\\u00[01][A-F]') """
    r"""ELSE regexp_matches(c, '^-?0\.00000[0-9]|[0-9]e[0-9]|[0-9]{17}\.') END""",
)


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class MappingQuery:
    """The stages of the query; `rows` and `rejects` wrap them around a reader."""

    def __init__(self, columns: Sequence[ColumnSpec], null_value: str) -> None:
        self._columns = list(columns)
        self._null_value = null_value
        prefixes: dict[Path, int] = {}
        for spec in columns:
            if spec.value is None:
                steps = spec.steps
                for depth in range(1, len(steps)):
                    prefixes.setdefault(steps[:depth], len(prefixes) + 1)
                prefixes.setdefault(steps, len(prefixes) + 1)
        self._prefixes = prefixes
        self._paths = "[" + ", ".join(sql_string(json_path(p)) for p in prefixes) + "]"
        self._stages: list[list[str]] = [[] for _ in range(6)]
        self._reasons: list[str] = []
        self._cells: list[str] = []
        self._checks: list[str] = []
        for i, spec in enumerate(columns):
            self._column(i, spec)

    # -- per column ---------------------------------------------------------------
    def _fixed(self, spec: ColumnSpec, given: object) -> str:
        if given is None:
            return "NULL"
        typed = converter(spec)(given)
        return sql_string(json_text(typed) if spec.type == "json" else text(typed))

    def _column(self, i: int, spec: ColumnSpec) -> None:
        if spec.value is not None:
            self._cells.append(self._fixed(spec, spec.value))
            return
        steps = spec.steps
        j = f"v[{self._prefixes[steps]}]"
        t = f"t{i}"
        l1, l2, l3, l4, l5, l6 = self._stages
        l1.append(f"json_type({j}) AS {t}")
        path_checks = []
        for depth in range(1, len(steps)):
            kind = "ARRAY" if type(steps[depth]) is int else "OBJECT"
            word = "non-array" if kind == "ARRAY" else "non-object"
            prefix_type = f"json_type(v[{self._prefixes[steps[:depth]]}])"
            path_checks.append(
                f"WHEN {prefix_type} NOT IN ('{kind}', 'NULL') "
                f"THEN {sql_string(f'path through a {word} at {show_path(steps[:depth])}')}")
        missing = f"coalesce({t}, 'NULL') = 'NULL'"
        cell = f"c{i}"
        if spec.type == "timestamp":
            l2.append(f"{_timestamp_text(spec, j, t)} AS x{i}")
            pattern, groups = _timestamp_pattern(spec)
            names = ", ".join(sql_string(g) for g in groups)
            l3.append(f"regexp_extract(x{i}, {sql_string('^(?:' + pattern + ')$')}, "
                      f"[{names}]) AS g{i}")
            ns, reason = _timestamp_ns(spec, f"x{i}", f"g{i}")
            l4.append(f"{ns} AS n{i}")
            l4.append(f"{reason} AS q{i}")
            l5.append(f"{_render(spec, f'n{i}')} AS {cell}")
            type_reason = f"q{i}"
        else:
            l2.append(f"{_convert(spec.type, j, t)} AS {cell}")
            type_reason = _type_reason(spec.type, j, t)
            if spec.type == "json":
                self._checks.append(f"streamer_json_differs({cell})")
            elif spec.type == "raw":
                self._checks.append(f"streamer_renders_otherwise({cell})")
        when_missing = ("'missing value'" if spec.required else "NULL")
        reason = (f"CASE {' '.join(path_checks)} WHEN {missing} THEN {when_missing} "
                  f"WHEN {cell} IS NULL THEN {type_reason} END")
        self._reasons.append(f"{sql_string(f'column {spec.name}: ')} || ({reason})")
        l6.append(f"CASE WHEN {missing} THEN {self._fixed(spec, spec.default)} "
                  f"ELSE {cell} END AS f{i}")
        self._cells.append(f"f{i}")

    # -- the query ----------------------------------------------------------------
    def _staged(self, reader: str, numbered: bool) -> str:
        number = ", row_number() OVER () - 1 AS ix" if numbered else ""
        query = f"SELECT json_extract(json, {self._paths}) AS v{number} FROM {reader}" \
            if self._prefixes else f"SELECT NULL AS v{number} FROM {reader}"
        for stage in self._stages:
            if stage:
                query = f"SELECT *, {', '.join(stage)} FROM ({query})"
        reasons = ", ".join(self._reasons) or "NULL"
        return f"SELECT *, coalesce({reasons}) AS bad FROM ({query})"

    def rows(self, reader: str) -> str:
        """The CSV cells of the records that convert, in order; a cell DuckDB
        would write otherwise than Python raises an error (the caller encodes
        that batch per record)."""
        if self._null_value == "":
            select = ", ".join(f"NULLIF({c}, '')" for c in self._cells)
        else:
            select = ", ".join(f"COALESCE({c}, {sql_string(self._null_value)})"
                               for c in self._cells)
        checks = " ".join(
            f"WHEN {check} THEN error('a value DuckDB writes otherwise than Python')"
            for check in self._checks)
        where = f" AND CASE {checks} ELSE true END" if checks else ""
        return f"SELECT {select} FROM ({self._staged(reader, False)}) WHERE bad IS NULL{where}"

    def rejects(self, reader: str) -> str:
        """(record index, reason) of the records that do not convert."""
        return (f"SELECT ix, bad FROM ({self._staged(reader, True)}) "
                f"WHERE bad IS NOT NULL ORDER BY ix")


def _integers(j: str) -> str:
    """WHEN clauses: JSON integers as Python writes them (`-0` is 0)."""
    return (f"WHEN 'BIGINT' THEN CAST(CAST({j} AS BIGINT) AS VARCHAR) "
            f"WHEN 'UBIGINT' THEN CAST(CAST({j} AS UBIGINT) AS VARCHAR)")


def _convert(kind: str, j: str, t: str) -> str:
    """Cell text of a present value, NULL when it does not convert."""
    string = f"({j} ->> '$')"
    double = f"CAST({j} AS DOUBLE)"
    if kind in ("string", "raw"):
        nested = f"CAST({j} AS VARCHAR)" if kind == "raw" else "NULL"
        return (f"CASE {t} WHEN 'VARCHAR' THEN {string} {_integers(j)} "
                f"WHEN 'DOUBLE' THEN CAST({double} AS VARCHAR) "
                f"WHEN 'OBJECT' THEN {nested} WHEN 'ARRAY' THEN {nested} "
                f"ELSE CAST({j} AS VARCHAR) END")
    if kind == "json":
        return f"CAST({j} AS VARCHAR)"
    if kind == "integer":
        return (f"CASE {t} WHEN 'BIGINT' THEN CAST(CAST({j} AS BIGINT) AS VARCHAR) "
                f"WHEN 'UBIGINT' THEN CAST(TRY_CAST({j} AS BIGINT) AS VARCHAR) "
                f"WHEN 'DOUBLE' THEN CASE WHEN {double} = trunc({double}) "
                f"AND {double} >= -9223372036854775808.0 AND {double} < 9223372036854775808.0 "
                f"THEN CAST(CAST({double} AS BIGINT) AS VARCHAR) END "
                f"WHEN 'VARCHAR' THEN CASE WHEN regexp_full_match({string}, '{INTEGER_RE}') "
                f"THEN CAST(TRY_CAST({string} AS BIGINT) AS VARCHAR) END END")
    if kind == "double":
        parsed = f"TRY_CAST({string} AS DOUBLE)"
        return (f"CASE {t} WHEN 'BIGINT' THEN CAST({double} AS VARCHAR) "
                f"WHEN 'UBIGINT' THEN CAST({double} AS VARCHAR) "
                f"WHEN 'DOUBLE' THEN CAST({double} AS VARCHAR) "
                f"WHEN 'VARCHAR' THEN CASE WHEN regexp_full_match({string}, "
                f"{sql_string(DOUBLE_RE)}) AND isfinite({parsed}) "
                f"THEN CAST({parsed} AS VARCHAR) END END")
    if kind == "boolean":
        return (f"CASE {t} WHEN 'BOOLEAN' THEN CAST({j} AS VARCHAR) "
                f"WHEN 'VARCHAR' THEN CASE WHEN {string} IN ('true', 'false') "
                f"THEN {string} END END")
    raise AssertionError(kind)


def _type_reason(kind: str, j: str, t: str) -> str:
    string = f"({j} ->> '$')"
    double = f"CAST({j} AS DOUBLE)"
    if kind in ("string", "raw", "json"):
        return sql_string(NOT_SCALAR)
    if kind == "integer":
        return (f"CASE WHEN {t} = 'UBIGINT' OR ({t} = 'DOUBLE' AND {double} = trunc({double})) "
                f"OR ({t} = 'VARCHAR' AND regexp_full_match({string}, '{INTEGER_RE}')) "
                f"THEN 'integer out of range' ELSE 'not an integer' END")
    if kind == "double":
        return (f"CASE WHEN {t} = 'VARCHAR' AND regexp_full_match({string}, "
                f"{sql_string(DOUBLE_RE)}) THEN 'double out of range' ELSE 'not a number' END")
    if kind == "boolean":
        return "'not a boolean'"
    raise AssertionError(kind)


def _timestamp_text(spec: ColumnSpec, j: str, t: str) -> str:
    """The text the timestamp is read from; NULL when the JSON type cannot hold it."""
    string = f"({j} ->> '$')"
    if spec.parse in EPOCH_UNITS:
        return (f"CASE {t} WHEN 'VARCHAR' THEN {string} "
                f"WHEN 'DOUBLE' THEN CAST(CAST({j} AS DOUBLE) AS VARCHAR) {_integers(j)} END")
    return f"CASE {t} WHEN 'VARCHAR' THEN {string} END"


def _timestamp_pattern(spec: ColumnSpec) -> tuple[str, tuple[str, ...]]:
    if spec.parse in EPOCH_UNITS:
        return DECIMAL, ("sign", "digits", "fraction", "exp")
    pattern = text_pattern(spec.parse)
    return pattern.regex, pattern.groups


def _int(field: str, default: int = 0) -> str:
    return f"coalesce(TRY_CAST(NULLIF({field}, '') AS BIGINT), {default})"


def _timestamp_ns(spec: ColumnSpec, x: str, g: str) -> tuple[str, str]:
    """(ns as HUGEINT or NULL, the reason when NULL) of the regexp groups `g`."""
    not_text = "'not an epoch number'" if spec.parse in EPOCH_UNITS \
        else "'timestamp is not a string'"
    in_range = f"BETWEEN {MIN_NS} AND {END_NS - 1}"
    if spec.parse in EPOCH_UNITS:
        unit = EPOCH_UNITS[spec.parse]
        digits = f"ltrim({g}.digits || {g}.fraction, '0')"
        exp_digits = f"length(ltrim({g}.exp, '+-'))"
        scale = f"({unit} + {_int(g + '.exp')} - length({g}.fraction))"
        signed = f"(CASE WHEN {g}.sign = '-' THEN -1 ELSE 1 END * TRY_CAST({digits} AS HUGEINT))"
        ns = (f"CASE WHEN {digits} = '' THEN CAST(0 AS HUGEINT) "
              f"WHEN length({digits}) > {MAX_DIGITS} OR {exp_digits} > 6 "
              f"OR length({digits}) + {scale} > 30 THEN NULL "
              f"WHEN {scale} >= 0 THEN {signed} * streamer_pow10({scale}) "
              f"WHEN length({digits}) + {scale} <= 0 THEN "
              f"CAST(CASE WHEN {g}.sign = '-' THEN -1 ELSE 0 END AS HUGEINT) "
              f"ELSE streamer_floordiv({signed}, streamer_pow10(-{scale})) END")
        ns = f"CASE WHEN {g}.digits = '' THEN NULL ELSE {ns} END"
        reason = (f"CASE WHEN {x} IS NULL THEN {not_text} "
                  f"WHEN {g}.digits = '' THEN 'not an epoch number' "
                  f"ELSE 'timestamp out of range' END")
        return f"CASE WHEN ({ns}) {in_range} THEN ({ns}) END", reason
    groups = text_pattern(spec.parse).groups
    year = _int(f"{g}.year")
    if "monthname" in groups:
        months = "[" + ", ".join(sql_string(m) for m in MONTHS) + "]"
        month = f"list_position({months}, lower({g}.monthname))"
    else:
        month = _int(f"{g}.month", 1)
    day = _int(f"{g}.day")
    hour, minute, second = (_int(f"{g}.{k}") if k in groups else "0"
                            for k in ("hour", "minute", "second"))
    zone = f"{g}.zone" if "zone" in groups else "''"
    zone_hours = f"CASE WHEN length({zone}) > 1 THEN CAST({zone}[2:3] AS BIGINT) ELSE 0 END"
    zone_minutes = f"CASE WHEN length({zone}) > 3 THEN CAST({zone}[-2:] AS BIGINT) ELSE 0 END"
    offset = (f"(({zone_hours}) * 60 + ({zone_minutes})) * "
              f"CASE WHEN {zone}[1:1] = '-' THEN -60 ELSE 60 END")
    frac = (f"coalesce(TRY_CAST(NULLIF(rpad({g}.frac, 9, '0'), '000000000') AS BIGINT), 0)"
            if "frac" in groups else "0")
    valid = (f"{year} >= 1 AND {month} BETWEEN 1 AND 12 "
             f"AND {day} BETWEEN 1 AND streamer_dim({year}, {month}) AND {hour} <= 23 "
             f"AND {minute} <= 59 AND {second} <= 59 AND ({zone_hours}) <= 23 "
             f"AND ({zone_minutes}) <= 59")
    ns = (f"(CAST(streamer_days({year}, {month}, {day}) AS HUGEINT) * 86400 + {hour} * 3600 "
          f"+ {minute} * 60 + {second} - ({offset})) * 1000000000 + {frac}")
    matched = f"{g}.year <> ''"
    value = f"CASE WHEN {matched} AND {valid} THEN {ns} END"
    reason = (f"CASE WHEN {x} IS NULL THEN {not_text} "
              f"WHEN NOT ({matched}) THEN 'not a timestamp in the parse format' "
              f"WHEN NOT ({valid}) THEN 'not a valid date or time' "
              f"ELSE 'timestamp out of range' END")
    return f"CASE WHEN ({value}) {in_range} THEN ({value}) END", reason


def _render(spec: ColumnSpec, n: str) -> str:
    if spec.format == "iso8601":
        return f"streamer_iso({n})"
    return f"CAST(streamer_floordiv({n}, streamer_pow10({EPOCH_UNITS[spec.format]})) AS VARCHAR)"
