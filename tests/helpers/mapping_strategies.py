"""Hypothesis strategies and encoder pairs shared by the column mapping's property
tests (tests/reliability/test_mapping_properties.py, test_mapping_typed_properties.py):
both compare the native (DuckDB) encoder with the per-record one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import orjson
from hypothesis import strategies as st

from streamer.sinks.stage.csv_native import NativeCsvEncoder
from streamer.sinks.stage.csv_python import CsvEncoder
from tests.helpers.c_functions import WAYS, native_encoder

# (separator, quote, null_value): the default CSV and one with every option changed
CSV_DIALECTS = [(",", '"', ""), ("\t", "'", "\\N")]
# each dialect with the C timestamp functions and without (their SQL)
DIALECTS_AND_WAYS = [(dialect, way) for dialect in CSV_DIALECTS for way in WAYS]

ints64 = st.integers(-(2**63), 2**63 - 1)

# dates where a conversion goes wrong first: a leap day, either side of the epoch,
# a year that is not a leap year although divisible by 4
EDGE_MOMENTS = [datetime(2024, 2, 29, 23, 59, 59), datetime(1969, 12, 31),
                datetime(1970, 1, 1), datetime(1900, 2, 28)]


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Any text JSON and DuckDB carry (no surrogates, no NUL)."""
    return st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                          blacklist_characters="\x00"), max_size=max_size)


def moments(low: datetime, high: datetime,
            extra: Sequence[datetime] = ()) -> st.SearchStrategy[datetime]:
    """Datetimes in [low, high], the EDGE_MOMENTS (and `extra`) often."""
    return st.datetimes(min_value=low, max_value=high) | st.sampled_from(
        [*EDGE_MOMENTS, *extra])


@st.composite
def fractions(draw) -> str:
    """An ISO 8601 fraction of 0-9 digits ("" or "." and the digits)."""
    digits = draw(st.integers(0, 9))
    if not digits:
        return ""
    return "." + str(draw(st.integers(0, 10**digits - 1))).rjust(digits, "0")


def encoder_pair(columns: Sequence[object], dialect: tuple[str, str, str],
                 way: str = "c") -> tuple[CsvEncoder, NativeCsvEncoder]:
    """The per-record (reference) and the native encoder for one CSV dialect, the
    native one with the C timestamp functions or without (`way`)."""
    separator, quote, null_value = dialect
    options = {"separator": separator, "quote": quote, "null_value": null_value}
    return CsvEncoder(columns, **options), native_encoder(columns, way, **options)


def per_record_rows(python: CsvEncoder, raws: Iterator[bytes] | Sequence[bytes]) -> bytes:
    """What the per-record encoder writes for these NDJSON lines (its dead letters:
    `python.rejected`)."""
    return python.encode([(list(map(orjson.loads, raws)), False)])
