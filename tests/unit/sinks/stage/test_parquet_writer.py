"""A Parquet stage file written row group by row group (parquet.ParquetFileWriter):
the bytes of each batch leave at once, the footer at close, and the file's
encodings follow its first batch."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from streamer.sinks.stage.parquet import ParquetFiles

TYPES = {"id": "BIGINT", "level": "VARCHAR", "message": "VARCHAR", "at": "TIMESTAMPTZ",
         "ok": "BOOLEAN", "ratio": "DOUBLE"}
EPOCH = dt.datetime(2024, 2, 29, tzinfo=dt.UTC)


def rows(start: int, count: int) -> pa.Table:
    ids = range(start, start + count)
    return pa.table({
        "id": list(ids),
        "level": [["info", "warn", None][i % 3] for i in ids],
        "message": [f"request {i} took {i * 7 % 1000} ms" for i in ids],
        "at": pa.array([EPOCH + dt.timedelta(microseconds=i) for i in ids],
                       pa.timestamp("us", tz="UTC")),
        "ok": [i % 2 == 0 for i in ids],
        "ratio": [i / 4 for i in ids],
    })


def want(start: int, count: int) -> list[tuple]:
    return [tuple(row.values()) for row in rows(start, count).to_pylist()]


def read(path: Path, query: str) -> list[tuple]:
    return duckdb.connect().execute(query.replace("FILE", f"'{path}'")).fetchall()


def test_each_batch_is_a_row_group_written_at_once(tmp_path: Path) -> None:
    writer = ParquetFiles(TYPES, "zstd").open()
    pieces = [writer.write(rows(0, 1000)), writer.write(rows(1000, 500)),
              writer.write(rows(1500, 0))]
    footer = writer.close()
    assert pieces[0][:4] == b"PAR1" and pieces[1] and pieces[2] == b""
    assert footer[-4:] == b"PAR1" and len(footer) < len(pieces[1])
    path = tmp_path / "f.parquet"
    path.write_bytes(b"".join(pieces) + footer)
    assert read(path, "SELECT * FROM FILE ORDER BY id") == want(0, 1500)
    assert read(path, "SELECT DISTINCT row_group_id, row_group_num_rows, compression "
                      "FROM parquet_metadata(FILE) ORDER BY 1") == \
        [(0, 1000, "ZSTD"), (1, 500, "ZSTD")]


def test_repeating_columns_get_a_dictionary_typed_columns_statistics(tmp_path: Path) -> None:
    writer = ParquetFiles(TYPES, "snappy").open()
    path = tmp_path / "f.parquet"
    path.write_bytes(writer.write(rows(0, 1000)) + writer.close())
    chunks = dict(read(path, "SELECT path_in_schema, (encodings LIKE '%DICTIONARY%', "
                             "stats_min IS NOT NULL) FROM parquet_metadata(FILE)"))
    # (booleans are bit-packed, never a dictionary)
    assert chunks == {"id": (False, True), "level": (True, False),
                      "message": (False, False), "at": (False, True), "ok": (False, True),
                      "ratio": (False, True)}


def test_a_file_without_rows_is_whole_and_typed(tmp_path: Path) -> None:
    writer = ParquetFiles(TYPES, "none").open()
    assert writer.write(rows(0, 0)) == b""
    path = tmp_path / "f.parquet"
    path.write_bytes(writer.close())
    assert read(path, "SELECT count(*) FROM FILE") == [(0,)]
    assert read(path, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM FILE)") \
        == [("id", "BIGINT"), ("level", "VARCHAR"), ("message", "VARCHAR"),
            ("at", "TIMESTAMP WITH TIME ZONE"), ("ok", "BOOLEAN"), ("ratio", "DOUBLE")]


def test_a_table_of_other_names_for_the_same_types_is_cast(tmp_path: Path) -> None:
    writer = ParquetFiles(TYPES, "snappy").open()
    table = rows(0, 10)
    other_zone = table.set_column(3, pa.field("at", pa.timestamp("us", tz="Etc/UTC")),
                                  table.column("at").cast(pa.timestamp("us", tz="Etc/UTC")))
    path = tmp_path / "f.parquet"
    path.write_bytes(writer.write(other_zone) + writer.close())
    assert read(path, "SELECT * FROM FILE ORDER BY id") == want(0, 10)


BUILD_ENCODERS = """
import sys
from streamer.observability.metrics import SinkStats
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.encoding import BatchEncoder
for fmt in sys.argv[1:]:
    cfg = StageSinkConfig.model_validate({"type": "stage", "url": "file:///tmp/x/",
                                          "columns": ["a", "b"], "format": fmt})
    BatchEncoder("st", cfg, SinkStats()).close()
print("pyarrow" in sys.modules)
"""


@pytest.mark.parametrize(("formats", "imported"), [(["csv", "ndjson"], "False"),
                                                   (["parquet"], "True")])
def test_pyarrow_is_imported_only_for_a_parquet_stage(formats: list[str],
                                                      imported: str) -> None:
    out = subprocess.run([sys.executable, "-c", BUILD_ENCODERS, *formats],
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == imported, out.stdout + out.stderr
