"""The native encoder's connection for a column mapping, with the timestamp
conversions in C when they can be had (`streamer_ts.c`, a DuckDB extension built by
setup.py beside the package's modules; issue #18).

The extension is unsigned, so the connection is created with
`allow_unsigned_extensions`; it is a private in-memory database that runs only
the encoder's generated SQL.  It loads one file, ours, by its absolute path in the
package; then checks the C functions against the typed query's SQL over a fixed
set of hard texts (leap days, zone offsets, fractions of every width, negative
epochs, the bounds); then locks itself: no file but the encoder's two memory files
can be read or written, no other extension loaded, no setting changed
(`enable_external_access = false`, `allowed_paths`, `lock_configuration`).  Any
failure (DuckDB upgraded past `CHECKED_DUCKDB`, a load refused, a function that
differs) closes that connection and returns an ordinary one: the typed query
then uses its SQL, with the same bytes, and one log line says why."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from streamer.core.duckdb_c import duckdb
from streamer.mapping.sql import sql_string
from streamer.mapping.sql_typed import C_TEXT, END_US, FAST_ISO, MIN_US, SECONDS, floordiv

log = logging.getLogger("streamer.mapping")

EXTENSION = Path(__file__).resolve().with_name("streamer_ts.duckdb_extension")
# the DuckDB versions [from, to) whose C API struct positions streamer_ts.c was
# checked against (tests/unit/mapping/test_c_functions.py fails outside it)
CHECKED_DUCKDB = ((2, 0), (2, 1))

HARD_TEXTS = (
    # ISO 8601: the typed query's form, leap days, offsets, fractions, bounds
    "2023-11-14T22:13:20+00:00", "2023-11-14T22:13:20Z", "2023-11-14 22:13:20Z",
    "2023-11-14T22:13:20", "2024-02-29T23:59:59.123456789-05:30", "2023-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+00:01", "0000-12-31T23:59:59Z", "9999-12-31T23:59:59.999999999Z",
    "9999-12-31T23:59:59-00:01", "1969-12-31T23:59:59.9999999-00:01",
    "1969-12-31T23:59:59.5Z", "1970-01-01T00:00:00.000001+23:59", "2023-11-14T22:13:20.1Z",
    "2023-11-14T22:13:20.1234567890Z", "2023-11-14T22:13:20.+00:00", "2023-11-14T24:00:00Z",
    "2023-11-14T23:59:60Z", "2023-11-14T22:13:20+24:00", "2023-11-14T22:13:20+23:60",
    "2023-11-14T22:13:20+0000", "2023-11-14T22:13:20+00", "2023-11-14T22:13:20+00:00:00",
    " 2023-11-14T22:13:20Z", "2023-11-14T22:13:20Z ", "2023-11-14T 2:13:20Z",
    "-023-11-14T22:13:20Z", "2023-11-14t22:13:20Z", "2023-11-14T22:13Z", "2023-13-01T00:00:00Z",
    "2023-04-31T00:00:00Z", "",
    # epoch seconds: negatives, the bounds, what is not an integer's canonical text
    "0", "-1", "-86400", "-86401", "86399", "951782400", "1700000000", "-62135596800",
    "-62135596801", "253402300799", "253402300800", "9223372036854775807",
    "-9223372036854775808", "99999999999999999999", "01", "-0", "+1", " 1", "1 ", "1.0",
    "1e3", "-",
)


def check_query() -> str:
    """The texts of `$texts` on which a C function differs from the SQL the typed
    query uses without it (sql_typed: FAST_ISO's test and the TIMESTAMPTZ cast, the
    range, the epoch's canonical text, `strftime`), then the count of texts."""
    low, end = MIN_US // 10**6, END_US // 10**6
    in_range = f"u >= {MIN_US} AND u < {END_US}"
    sql = [
        "u",
        *(f"CASE WHEN {in_range} THEN CAST({floordiv('u', 10**k)} AS VARCHAR) END"
          for k in (6, 3, 0)),
        f"CASE WHEN CAST(e AS VARCHAR) = s AND e >= {low} AND e < {end} "
        f"THEN strftime(make_timestamp(e * 1000000), '{SECONDS}Z') END"]
    c = ["streamer_iso_us(s)", *(f"{C_TEXT['iso8601', unit]}(s)"
                                 for unit in ("epoch_s", "epoch_ms", "epoch_us")),
         f"{C_TEXT['epoch_s', 'iso8601']}(s)"]
    return (f"SELECT s FROM (SELECT s, TRY_CAST(s AS BIGINT) AS e, "
            f"CASE WHEN regexp_full_match(s, {sql_string(FAST_ISO)}) "
            f"THEN epoch_us(TRY_CAST(s AS TIMESTAMPTZ)) END AS u "
            f"FROM (SELECT unnest($texts::VARCHAR[]) AS s)) "
            f"WHERE ({', '.join(sql)}) IS DISTINCT FROM ({', '.join(c)}) "
            f"UNION ALL SELECT CAST(len($texts) AS VARCHAR)")


def _mapping_settings(con: duckdb.DuckDBPyConnection) -> None:
    # pushed down, the rows' filter would inline every stage below it and
    # read each record's JSON once per column (5x the query's time)
    con.execute("SET disabled_optimizers = 'filter_pushdown'")
    # a timestamp without a zone is UTC, as in Python (a DuckDB without ICU
    # has no time zone setting and reads it as UTC anyway)
    with contextlib.suppress(duckdb.Error):
        con.execute("SET TimeZone = 'UTC'")


def _unavailable() -> str | None:
    """Why the extension is not to be loaded, or None."""
    if not EXTENSION.is_file():
        return "not built"
    version = tuple(int(part) for part in duckdb.__version__.split(".")[:2])
    low, high = CHECKED_DUCKDB
    if not low <= version < high:
        return (f"duckdb {duckdb.__version__} is outside the versions its declarations were "
                f"checked against ({'.'.join(map(str, low))} to before "
                f"{'.'.join(map(str, high))})")
    return None


def _loaded(con: duckdb.DuckDBPyConnection, files: Sequence[str]) -> str | None:
    """Load the extension into `con`, check it, lock `con`: None, or why not."""
    con.execute(f"LOAD {sql_string(str(EXTENSION))}")
    *differ, (count,) = con.execute(check_query(), {"texts": list(HARD_TEXTS)}).fetchall()
    if differ or count != str(len(HARD_TEXTS)):
        return f"its functions differ from the SQL on {[text for (text,) in differ][:3]!r}"
    paths = ", ".join(sql_string(path) for path in files)
    con.execute(f"SET allowed_paths = [{paths}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return None


def mapping_connection(threads: int, files: Sequence[str]) -> tuple[
        duckdb.DuckDBPyConnection, bool]:
    """A private in-memory connection for the mapping's queries, which read and
    write only `files`; True when the C functions are loaded on it."""
    why = _unavailable()
    if why is None:
        con = duckdb.connect(config={"threads": threads, "allow_unsigned_extensions": "true"})
        try:
            _mapping_settings(con)
            why = _loaded(con, files)
        except duckdb.Error as exc:
            why = str(exc).splitlines()[0]
        if why is None:
            return con, True
        con.close()
        log.warning("the column mapping's C timestamp functions (%s) are not used, its SQL "
                    "is (slower, the same output): %s", EXTENSION.name, why)
    elif why != "not built":
        log.info("the column mapping's C timestamp functions are not used, its SQL is "
                 "(slower, the same output): %s", why)
    con = duckdb.connect(config={"threads": threads})
    _mapping_settings(con)
    return con, False
