"""A `json` column's numbers are spelled alike in every format and by both encoders:
the CSV cell's text (orjson's: `1e+21`, `1e+16`, `1e-7`, `-0.0`, `5e-324`) is the
text of the value in an NDJSON line and of the Parquet VARCHAR.  Before, NDJSON's
`COPY ... (FORMAT json)` re-wrote the value through DuckDB's JSON writer: `1e21`,
`10000000000000000.0` -- the same number, another text, so a query of the loaded
tables (`g->>'x'`) gave different strings by format."""

from __future__ import annotations

import csv
import io

import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.lines import Lines
from streamer.observability.metrics import SinkStats
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.csv_native import MIN_RECORDS
from streamer.sinks.stage.encoding import BatchEncoder
from streamer.sinks.stage.store.local import StagedFile

COLUMNS = [{"name": "id", "type": "integer"}, {"name": "g", "type": "json"}]

EDGES = [1e16, 1e17, 1e21, 1e22, 123456789012345680000.0, 9007199254740993.0, 1e-5, 1e-6,
         1e-7, 1.5e-7, 0.0001, -0.0, 0.0, 5e-324, 2.2250738585072014e-308,
         2.225073858507201e-308, 1.7976931348623157e308, 0.1, 100.0]
floats = st.one_of(
    st.sampled_from(EDGES),
    st.floats(min_value=1e16, max_value=1e22),
    st.floats(min_value=1e-7, max_value=1e-5),
    st.floats(min_value=5e-324, max_value=2.2250738585072014e-308),  # subnormals
    st.floats(allow_nan=False, allow_infinity=False),
)
signed = st.tuples(floats, st.booleans()).map(lambda p: -p[0] if p[1] else p[0])


def encoder(fmt: str, native: bool) -> BatchEncoder:
    cfg = StageSinkConfig.model_validate({"type": "stage", "url": "file:///tmp/x/",
                                          "columns": COLUMNS, "format": fmt,
                                          "native_encoding": native})
    return BatchEncoder("st", cfg, SinkStats())


@pytest.fixture(scope="module")
def encoders():
    made = {(fmt, native): encoder(fmt, native)
            for fmt in ("csv", "ndjson", "parquet") for native in (True, False)}
    yield made
    for enc in made.values():
        enc.close()


async def json_texts(enc: BatchEncoder, fmt: str, values: list) -> list[str]:
    """The text of each record's `g` in the file `enc` writes."""
    raws = [orjson.dumps({"id": i, "g": {"x": v, "a": [v]}}) for i, v in enumerate(values)]
    staged = StagedFile(None, f"part-00001.{fmt}", 0.0)  # type: ignore[arg-type]
    encoded = await enc.encode([Lines.of(raws)], staged)
    data = encoded.rows + await enc.finish(staged)
    assert encoded.rejected == []
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(data))
        assert table.column("id").to_pylist() == list(range(len(values)))
        return table.column("g").to_pylist()
    if fmt == "ndjson":
        lines = data.splitlines()
        prefixes = [b'{"id":%d,"g":' % i for i in range(len(values))]
        assert [line[:len(p)] for line, p in zip(lines, prefixes, strict=True)] == prefixes
        assert all(line.endswith(b"}") for line in lines)
        return [line[len(p):-1].decode() for line, p in zip(lines, prefixes, strict=True)]
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))  # no header: the store's
    assert [row[0] for row in rows] == [str(i) for i in range(len(values))]
    return [row[1] for row in rows]


@settings(max_examples=60, deadline=None)
@given(values=st.lists(signed, min_size=1, max_size=8), native_size=st.booleans())
async def test_every_format_spells_a_json_columns_numbers_as_the_csv_cell(
        encoders, values: list[float], native_size: bool) -> None:
    if native_size:  # a batch the native query takes (below MIN_RECORDS: per record)
        values = (values * MIN_RECORDS)[:max(MIN_RECORDS, len(values))]
    expected = [orjson.dumps({"x": v, "a": [v]}).decode() for v in values]
    for (fmt, native), enc in encoders.items():
        assert await json_texts(enc, fmt, values) == expected, (fmt, native)
