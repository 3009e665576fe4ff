"""ISO 8601 timestamps in the typed query: DuckDB's TIMESTAMPTZ cast reads more
than the per-record parser (a year after spaces or a sign, an hour after a space,
one-digit seconds before an empty fraction, hour 24, zones past 23:59, zones with
seconds), so every text must give the per-record encoder's cell or dead letter,
and the typed query must leave the texts it cannot prove to the full query."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.core.lines import Lines
from streamer.sinks.stage.csv_native import NativeCsvEncoder
from streamer.sinks.stage.csv_python import CsvEncoder
from tests.helpers.c_functions import WAYS, native_encoder

COLUMNS = [
    {"name": "ms", "from": "e.t", "type": "timestamp", "format": "epoch_ms"},
    {"name": "iso", "from": "e.t", "type": "timestamp"},
    {"name": "ns", "from": "e.t", "type": "timestamp", "format": "epoch_ns"},
    {"name": "n", "type": "integer"},
]
BASE = "2023-11-14T22:13:20+00:00"
# the typed query proves these itself (no record to the full query)
PROVEN = [BASE, "2023-11-14T22:13:20Z", "2023-11-14 22:13:20Z", "2023-11-14T22:13:20",
          "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59Z",
          "9999-12-31T23:59:59.999999999+00:00", "2023-11-14T22:13:20+14:00",
          "2023-11-14T22:13:20-12:00", "2023-11-14T22:13:20+23:59", "2024-02-29T00:00:00Z",
          "1969-12-31T23:59:59.9999999-00:01",
          *(f"2023-11-14T22:13:20.{'123456789'[:d]}Z" for d in range(1, 10)),
          *(f"2023-11-14T22:13:20.{'987654321'[:d]}+05:30" for d in range(1, 10))]
# the per-record parser's own forms, or values it refuses, that the typed query
# leaves to the full query: both encoders then agree on the cell or the reason
LEFT_TO_THE_FULL_QUERY = [
    " 023-11-14T22:13:20+00:00", "-023-11-14T22:13:20+00:00", "\t023-11-14T22:13:20Z",
    " 2023-11-14T22:13:20Z", "2023-11-14T22:13:20Z ", "2023-11-14T22:13:20+00:00 ",
    "2023-11-14T 2:13:20+00:00", "2023-11-14T22:13:2.+00:00", "2023-11-14T22:13:20.+00:00",
    "2023-11-14T24:00:00+00:00", "2023-11-14T23:59:60Z", "2023-11-14T23:60:00Z",
    "2023-11-14T22:13:20+24:00", "2023-11-14T22:13:20+23:60", "2023-11-14T22:13:20+99:00",
    "2023-11-14T22:13:20+00:00:00", "2023-11-14T22:13:20+0000", "2023-11-14T22:13:20+00",
    "2023-11-14T22:13:20.1234567890Z", "2023-11-14T22:13:20,5Z", "2023-11-14t22:13:20Z",
    "2023-11-14T22:13:20z", "2023-11-14T22:13Z", "2023-11-14T22:13", "2023-11-14",
    "2023-02-29T00:00:00Z", "2023-00-14T22:13:20Z", "2023-11-00T22:13:20Z",
    "0000-12-31T23:59:59Z", "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01",
    "2023-11-14T22:13:20 +00:00", "2023-11-14T22:13:20UTC", "2023-1-14T22:13:20Z",
    "+2023-11-14T22:13:20Z", "20231114T221320Z", "",
]
CLEAN = [{"e": {"t": f"2024-01-01T10:00:{i % 60:02d}Z"}, "n": i} for i in range(70)]


@pytest.fixture(scope="module", params=WAYS)
def native(request) -> Iterator[NativeCsvEncoder]:
    encoder = native_encoder(COLUMNS, request.param)
    yield encoder
    encoder.close()


def encode_both(native: NativeCsvEncoder, texts: list[str]) -> tuple[int, int]:
    """The native rows and dead letters of CLEAN + one record per text are the
    per-record encoder's; (typed, split) batches: how the native encoder wrote it."""
    records = [*CLEAN, *({"e": {"t": t}, "n": i} for i, t in enumerate(texts))]
    raws = [orjson.dumps(r) for r in records]
    python = CsvEncoder(COLUMNS)
    want = python.encode([([orjson.loads(r) for r in raws], False)])
    typed, split = native.typed_batches, native.split_batches
    got = native.encode([Lines.of(raws)])
    assert (got.rows, got.rejected) == (want, python.rejected)
    return native.typed_batches - typed, native.split_batches - split


def test_the_exact_forms_are_proven_by_the_typed_query(native: NativeCsvEncoder) -> None:
    assert encode_both(native, PROVEN) == (1, 0)


@pytest.mark.parametrize("text", LEFT_TO_THE_FULL_QUERY, ids=repr)
def test_what_duckdb_reads_otherwise_goes_to_the_full_query(
        native: NativeCsvEncoder, text: str) -> None:
    assert encode_both(native, [text]) == (0, 1)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, len(BASE) - 1), st.sampled_from(" \t+-.:/Tt_Zz0129,"),
       st.integers(0, len(BASE) - 1), st.sampled_from(" \t+-.:/T0129"))
def test_a_text_one_or_two_characters_off_the_form_is_read_as_per_record(
        native: NativeCsvEncoder, at: int, char: str, at2: int, char2: str) -> None:
    one = BASE[:at] + char + BASE[at + 1:]
    two = one[:at2] + char2 + one[at2 + 1:]
    encode_both(native, [one, two, one.replace("+00:00", "Z"), two.replace("T", " ", 1)])
