"""A compressed stage's DuckDB row limit follows its sources' longest record; the
defaults stay DuckDB's."""

import pytest
from pydantic import ValidationError

from streamer.loaders.config import DuckDBLoad
from streamer.loaders.duckdb_memory import compressed_read, longest_row, parse_size


def test_default_records_keep_duckdbs_readers_as_they_are():
    row = longest_row(1024 * 1024, 40)
    assert compressed_read("csv", row) == ("", 0)
    assert compressed_read("ndjson", row) == ("", 0)


def test_long_records_raise_the_limit_and_what_it_needs():
    row = longest_row(40_000_000, 2)
    assert row == 50_000_128
    assert compressed_read("csv", row) == (
        "max_line_size = 50000128, buffer_size = 50000128", 200_000_512)
    assert compressed_read("ndjson", row) == ("maximum_object_size = 50000128", 200_000_512)
    # a line over DuckDB's 2 MB keeps its 32 MB buffer at least
    assert compressed_read("csv", 3_000_000) == (
        "max_line_size = 3000000, buffer_size = 32000000", 128_000_000)


def test_memory_limit_takes_duckdbs_sizes_only():
    assert [parse_size(t) for t in ("4GB", "512MiB", "1.5 GB", "100")] == [
        4 * 10**9, 512 << 20, 1_500_000_000, 100]
    assert DuckDBLoad(type="duckdb", table="t", memory_limit="2GiB").memory_limit == "2GiB"
    with pytest.raises(ValidationError, match="'lots' is not a size DuckDB takes"):
        DuckDBLoad(type="duckdb", table="t", memory_limit="lots")
