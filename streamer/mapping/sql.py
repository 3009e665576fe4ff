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
        # every path's JSON type (and its prefixes': a path through a non-object is
        # bad), and the text of the columns' values only (an object's text is dear)
        prefixes: dict[Path, int] = {}
        leaves: dict[Path, int] = {}
        for spec in columns:
            if spec.value is None:
                steps = spec.steps
                for depth in range(1, len(steps)):
                    prefixes.setdefault(steps[:depth], len(prefixes) + 1)
                prefixes.setdefault(steps, len(prefixes) + 1)
                leaves.setdefault(steps, len(leaves) + 1)
        self._prefixes = prefixes
        self._leaves = leaves
        self._paths = "[" + ", ".join(sql_string(json_path(p)) for p in prefixes) + "]"
        self._leaf_paths = "[" + ", ".join(sql_string(json_path(p)) for p in leaves) + "]"
        self._stages: list[list[str]] = [[] for _ in range(8)]
        self._reasons: list[str] = []
        self._oks: list[str] = []
        self._path_flags: set[str] = set()
        self._never_empty: set[str] = set()  # cells that are never '' (numbers, times)
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
        t, j = f"t{i}", f"s{i}"  # the value's JSON type and its text (strings unquoted)
        l1, l2, l3, l4, l5, l6, l7, l8 = self._stages
        l1.append(f"ty[{self._prefixes[steps]}] AS {t}")
        l1.append(f"vs[{self._leaves[steps]}] AS {j}")
        path_checks, path_oks = [], []
        for depth in range(1, len(steps)):
            kind = "ARRAY" if type(steps[depth]) is int else "OBJECT"
            word = "non-array" if kind == "ARRAY" else "non-object"
            prefix = self._prefixes[steps[:depth]]
            prefix_type = f"ty[{prefix}]"
            # one flag per prefix and kind, shared by the columns under it
            flag = f"p{prefix}{kind[0].lower()}"
            if flag not in self._path_flags:
                self._path_flags.add(flag)
                l1.append(f"coalesce({prefix_type} IN ('{kind}', 'NULL'), true) AS {flag}")
            path_oks.append(flag)
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
            # one stage per step: each refers to the last by name, so no
            # expression is repeated inside another (DuckDB plans them in ms)
            fields, ok, ns, reason = _timestamp_ns(spec, f"x{i}", f"g{i}", f"k{i}", f"n{i}")
            l4.append(f"{fields} AS k{i}")
            l5.append(f"{ok} AS ok{i}")
            l5.append(f"{ns} AS n{i}")
            l6.append(f"CASE WHEN n{i} BETWEEN {MIN_NS} AND {END_NS - 1} THEN n{i} END AS m{i}")
            l6.append(f"{reason} AS q{i}")
            l7.append(f"{_render(spec, f'm{i}')} AS {cell}")
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
        # the rows' filter: the same verdict without the reason's text
        converted = f"{cell} IS NOT NULL" if spec.required else \
            f"({cell} IS NOT NULL OR {missing})"
        self._oks.append(" AND ".join([*path_oks, converted]))
        if spec.default is None:
            self._cells.append(cell)  # NULL when missing
            if spec.type not in ("string", "raw", "json"):
                self._never_empty.add(cell)
            return
        l8.append(f"CASE WHEN {missing} THEN {self._fixed(spec, spec.default)} "
                  f"ELSE {cell} END AS f{i}")
        self._cells.append(f"f{i}")

    # -- the query ----------------------------------------------------------------
    def _staged(self, reader: str, numbered: bool) -> str:
        number = ", row_number() OVER () - 1 AS ix" if numbered else ""
        # two passes over each record, each for every path at once: the JSON
        # types, and the values as text (strings unquoted, the rest as JSON)
        query = (f"SELECT json_type(json, {self._paths}) AS ty, "
                 f"json_extract_string(json, {self._leaf_paths}) AS vs{number} FROM {reader}"
                 if self._prefixes else f"SELECT NULL AS ty{number} FROM {reader}")
        for stage in self._stages:
            if stage:
                query = f"SELECT *, {', '.join(stage)} FROM ({query})"
        return query

    def rows(self, reader: str) -> str:
        """The CSV cells of the records that convert, in order; a cell DuckDB
        would write otherwise than Python raises an error (the caller encodes
        that batch per record)."""
        if self._null_value == "":
            select = ", ".join(c if c in self._never_empty else f"NULLIF({c}, '')"
                               for c in self._cells)
        else:
            select = ", ".join(f"COALESCE({c}, {sql_string(self._null_value)})"
                               for c in self._cells)
        checks = " ".join(
            f"WHEN {check} THEN error('a value DuckDB writes otherwise than Python')"
            for check in self._checks)
        where = " AND ".join(f"({ok})" for ok in self._oks) or "true"
        if checks:
            where += f" AND CASE {checks} ELSE true END"
        return f"SELECT {select} FROM ({self._staged(reader, False)}) WHERE {where}"

    def rejects(self, reader: str) -> str:
        """(record index, reason) of the records that do not convert."""
        reasons = ", ".join(self._reasons) or "NULL"
        return (f"SELECT ix, bad FROM (SELECT ix, coalesce({reasons}) AS bad "
                f"FROM ({self._staged(reader, True)})) WHERE bad IS NOT NULL ORDER BY ix")


def _convert(kind: str, j: str, t: str) -> str:
    """Cell text of a present value (`j`: its text, `t`: its JSON type), NULL when
    it does not convert.  yyjson writes integers as Python does; doubles go
    through DOUBLE (DuckDB writes them as Python's repr)."""
    double = f"CAST(CAST({j} AS DOUBLE) AS VARCHAR)"
    if kind in ("string", "raw"):
        nested = j if kind == "raw" else "NULL"
        return (f"CASE {t} WHEN 'DOUBLE' THEN {double} WHEN 'OBJECT' THEN {nested} "
                f"WHEN 'ARRAY' THEN {nested} ELSE {j} END")
    if kind == "json":
        return f"CASE {t} WHEN 'VARCHAR' THEN CAST(to_json({j}) AS VARCHAR) ELSE {j} END"
    if kind == "integer":
        number = f"CAST({j} AS DOUBLE)"
        return (f"CASE {t} WHEN 'BIGINT' THEN {j} "
                f"WHEN 'UBIGINT' THEN CAST(TRY_CAST({j} AS BIGINT) AS VARCHAR) "
                f"WHEN 'DOUBLE' THEN CASE WHEN {number} = trunc({number}) "
                f"AND {number} >= -9223372036854775808.0 AND {number} < 9223372036854775808.0 "
                f"THEN CAST(CAST({number} AS BIGINT) AS VARCHAR) END "
                f"WHEN 'VARCHAR' THEN CASE WHEN regexp_full_match({j}, '{INTEGER_RE}') "
                f"THEN CAST(TRY_CAST({j} AS BIGINT) AS VARCHAR) END END")
    if kind == "double":
        parsed = f"TRY_CAST({j} AS DOUBLE)"
        return (f"CASE {t} WHEN 'BIGINT' THEN {double} WHEN 'UBIGINT' THEN {double} "
                f"WHEN 'DOUBLE' THEN {double} "
                f"WHEN 'VARCHAR' THEN CASE WHEN regexp_full_match({j}, "
                f"{sql_string(DOUBLE_RE)}) AND isfinite({parsed}) "
                f"THEN CAST({parsed} AS VARCHAR) END END")
    if kind == "boolean":
        return (f"CASE {t} WHEN 'BOOLEAN' THEN {j} "
                f"WHEN 'VARCHAR' THEN CASE WHEN {j} IN ('true', 'false') THEN {j} END END")
    raise AssertionError(kind)


def _type_reason(kind: str, j: str, t: str) -> str:
    if kind in ("string", "raw", "json"):
        return sql_string(NOT_SCALAR)
    if kind == "integer":
        number = f"CAST({j} AS DOUBLE)"
        return (f"CASE WHEN {t} = 'UBIGINT' OR ({t} = 'DOUBLE' AND {number} = trunc({number})) "
                f"OR ({t} = 'VARCHAR' AND regexp_full_match({j}, '{INTEGER_RE}')) "
                f"THEN 'integer out of range' ELSE 'not an integer' END")
    if kind == "double":
        return (f"CASE WHEN {t} = 'VARCHAR' AND regexp_full_match({j}, "
                f"{sql_string(DOUBLE_RE)}) THEN 'double out of range' ELSE 'not a number' END")
    if kind == "boolean":
        return "'not a boolean'"
    raise AssertionError(kind)


def _timestamp_text(spec: ColumnSpec, j: str, t: str) -> str:
    """The text the timestamp is read from; NULL when the JSON type cannot hold it."""
    if spec.parse in EPOCH_UNITS:
        return (f"CASE {t} WHEN 'VARCHAR' THEN {j} "
                f"WHEN 'DOUBLE' THEN CAST(CAST({j} AS DOUBLE) AS VARCHAR) "
                f"WHEN 'BIGINT' THEN {j} WHEN 'UBIGINT' THEN {j} END")
    return f"CASE {t} WHEN 'VARCHAR' THEN {j} END"


def _timestamp_pattern(spec: ColumnSpec) -> tuple[str, tuple[str, ...]]:
    if spec.parse in EPOCH_UNITS:
        return DECIMAL, ("sign", "digits", "fraction", "exp")
    pattern = text_pattern(spec.parse)
    return pattern.regex, pattern.groups


def _int(field: str, default: int = 0) -> str:
    return f"coalesce(TRY_CAST(NULLIF({field}, '') AS BIGINT), {default})"


def _timestamp_ns(spec: ColumnSpec, x: str, g: str, k: str, n: str,
                  ) -> tuple[str, str, str, str]:
    """From the regexp groups `g`: the fields as numbers (struct `k`), whether they
    make a valid time (`ok`), ns as HUGEINT (`n`, range not checked) and the reason
    when the column has none."""
    not_text = "'not an epoch number'" if spec.parse in EPOCH_UNITS \
        else "'timestamp is not a string'"
    if spec.parse in EPOCH_UNITS:
        fields = (f"struct_pack(dg := ltrim({g}.digits || {g}.fraction, '0'), "
                  f"sc := {EPOCH_UNITS[spec.parse]} + {_int(g + '.exp')} - length({g}.fraction), "
                  f"exl := length(ltrim({g}.exp, '+-')), neg := {g}.sign = '-')")
        length = f"length({k}.dg)"
        signed = f"(CASE WHEN {k}.neg THEN -1 ELSE 1 END * TRY_CAST({k}.dg AS HUGEINT))"
        ok = (f"{g}.digits <> '' AND ({k}.dg = '' OR ({length} <= {MAX_DIGITS} "
              f"AND {k}.exl <= 6 AND {length} + {k}.sc <= 30))")
        ns = (f"CASE WHEN NOT ({ok}) THEN NULL WHEN {k}.dg = '' THEN CAST(0 AS HUGEINT) "
              f"WHEN {k}.sc >= 0 THEN {signed} * streamer_pow10({k}.sc) "
              f"WHEN {length} + {k}.sc <= 0 THEN "
              f"CAST(CASE WHEN {k}.neg THEN -1 ELSE 0 END AS HUGEINT) "
              f"ELSE streamer_floordiv({signed}, streamer_pow10(-{k}.sc)) END")
        reason = (f"CASE WHEN {x} IS NULL THEN {not_text} "
                  f"WHEN {g}.digits = '' THEN 'not an epoch number' "
                  f"ELSE 'timestamp out of range' END")
        return fields, ok, ns, reason
    groups = text_pattern(spec.parse).groups
    if "monthname" in groups:
        months = "[" + ", ".join(sql_string(m) for m in MONTHS) + "]"
        month = f"list_position({months}, lower({g}.monthname))"
    else:
        month = _int(f"{g}.month", 1)
    hour, minute, second = (_int(f"{g}.{key}") if key in groups else "0"
                            for key in ("hour", "minute", "second"))
    zone = f"{g}.zone" if "zone" in groups else "''"
    frac = (f"coalesce(TRY_CAST(rpad({g}.frac, 9, '0') AS BIGINT), 0)"
            if "frac" in groups else "0")
    fields = (f"struct_pack(y := {_int(g + '.year')}, mo := {month}, d := {_int(g + '.day')}, "
              f"h := {hour}, mi := {minute}, s := {second}, fr := {frac}, "
              f"zh := CASE WHEN length({zone}) > 1 THEN CAST({zone}[2:3] AS BIGINT) ELSE 0 END, "
              f"zm := CASE WHEN length({zone}) > 3 THEN CAST({zone}[-2:] AS BIGINT) ELSE 0 END, "
              f"zs := CASE WHEN {zone}[1:1] = '-' THEN -60 ELSE 60 END)")
    ok = (f"{g}.year <> '' AND {k}.y >= 1 AND {k}.mo BETWEEN 1 AND 12 "
          f"AND {k}.d BETWEEN 1 AND streamer_dim({k}.y, {k}.mo) AND {k}.h <= 23 "
          f"AND {k}.mi <= 59 AND {k}.s <= 59 AND {k}.zh <= 23 AND {k}.zm <= 59")
    ns = (f"CASE WHEN {ok} THEN (CAST(streamer_days({k}.y, {k}.mo, {k}.d) AS HUGEINT) * 86400 "
          f"+ {k}.h * 3600 + {k}.mi * 60 + {k}.s - ({k}.zh * 60 + {k}.zm) * {k}.zs) "
          f"* 1000000000 + {k}.fr END")
    ok_name = k.replace("k", "ok", 1)
    reason = (f"CASE WHEN {x} IS NULL THEN {not_text} "
              f"WHEN {g}.year = '' THEN 'not a timestamp in the parse format' "
              f"WHEN NOT {ok_name} THEN 'not a valid date or time' "
              f"ELSE 'timestamp out of range' END")
    del n
    return fields, ok, ns, reason


def _render(spec: ColumnSpec, n: str) -> str:
    if spec.format == "iso8601":
        return f"streamer_iso({n})"
    return f"CAST(streamer_floordiv({n}, streamer_pow10({EPOCH_UNITS[spec.format]})) AS VARCHAR)"
