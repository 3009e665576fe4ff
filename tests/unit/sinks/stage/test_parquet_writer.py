"""A Parquet stage file written row group by row group (parquet.ParquetFileWriter):
batches are held until they make a row group (of rows, or of held Arrow bytes),
what is held is written at close before the footer, and the file's encodings
follow its first batch."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from streamer.sinks.stage.parquet import ROW_GROUP_ROWS, ParquetFiles, ParquetFileWriter

TYPES = {"id": "BIGINT", "level": "VARCHAR", "message": "VARCHAR", "at": "TIMESTAMPTZ",
         "ok": "BOOLEAN", "ratio": "DOUBLE"}
EPOCH = dt.datetime(2024, 2, 29, tzinfo=dt.UTC)
NO_LIMIT = 1 << 40  # max_file_bytes


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


def groups(path: Path) -> list[tuple]:
    return read(path, "SELECT DISTINCT row_group_id, row_group_num_rows, compression "
                      "FROM parquet_metadata(FILE) ORDER BY 1")


def small_writer(codec: str = "zstd", rows: int = 1000, held_cap: int = 1 << 30,
                 max_file_bytes: int = NO_LIMIT) -> ParquetFileWriter:
    return ParquetFiles(TYPES, codec, max_file_bytes, rows, held_cap).open()


def test_batches_are_held_until_they_make_a_row_group(tmp_path: Path) -> None:
    writer = small_writer()
    pieces = [writer.write(rows(0, 300)), writer.write(rows(300, 300)),
              writer.write(rows(600, 0))]
    assert pieces == [b"PAR1", b"", b""]  # the header only: the rows are held
    assert writer.held_bytes > 0
    pieces.append(writer.write(rows(600, 1700)))  # 2,300 rows: two groups, 300 held
    assert len(pieces[-1]) > 1000 and writer.held_bytes > 0
    footer = writer.close()  # the 300 held rows, then the footer
    assert footer[-4:] == b"PAR1" and writer.held_bytes == 0
    path = tmp_path / "f.parquet"
    path.write_bytes(b"".join(pieces) + footer)
    assert read(path, "SELECT * FROM FILE ORDER BY id") == want(0, 2300)
    assert read(path, "SELECT * FROM FILE") == want(0, 2300)  # in the order written
    assert groups(path) == [(0, 1000, "ZSTD"), (1, 1000, "ZSTD"), (2, 300, "ZSTD")]


def test_the_default_row_group_is_duckdbs(tmp_path: Path) -> None:
    writer = ParquetFiles(TYPES, "snappy", NO_LIMIT).open()
    batch = 20_000
    pieces = [writer.write(rows(start, batch)) for start in range(0, 260_000, batch)]
    path = tmp_path / "f.parquet"
    path.write_bytes(b"".join(pieces) + writer.close())
    assert ROW_GROUP_ROWS == 122_880
    assert groups(path) == [(0, 122_880, "SNAPPY"), (1, 122_880, "SNAPPY"),
                            (2, 260_000 - 2 * 122_880, "SNAPPY")]
    assert read(path, "SELECT * FROM FILE") == want(0, 260_000)


def test_held_arrow_bytes_are_capped(tmp_path: Path) -> None:
    one = rows(0, 100).nbytes
    writer = small_writer(rows=1_000_000, held_cap=3 * one)
    pieces = [writer.write(rows(start, 100)) for start in range(0, 700, 100)]
    # the third and the sixth batch reach the cap: what is held is one row group
    assert [len(piece) > 0 for piece in pieces] == [True, False, True, False, False,
                                                    True, False]
    path = tmp_path / "f.parquet"
    path.write_bytes(b"".join(pieces) + writer.close())
    assert [rows_ for _, rows_, _ in groups(path)] == [300, 300, 100]
    assert read(path, "SELECT * FROM FILE") == want(0, 700)


def test_held_bytes_estimate_the_parquet_bytes_they_will_add(tmp_path: Path) -> None:
    files = ParquetFiles(TYPES, "zstd", NO_LIMIT)
    first = files.open()
    first.write(rows(0, 5000))
    assert first.held_bytes == rows(0, 5000).nbytes  # no row group yet: Arrow bytes
    written = len(first.close())
    # the next files use the ratio the first one showed
    writer = files.open()
    writer.write(rows(5000, 5000))
    assert 0.7 * written < writer.held_bytes < 1.3 * written


def test_held_rows_are_written_once_they_would_reach_max_file_bytes(tmp_path: Path) -> None:
    """The sink closes a file after the write that reaches max_file_bytes: held rows
    that would make it (estimated) are written at once, so the file's bytes reach it."""
    limit = rows(0, 400).nbytes
    writer = small_writer(max_file_bytes=limit)
    pieces = [writer.write(rows(0, 200))]
    assert writer.held_bytes > 0  # no estimate from a row group yet: its Arrow bytes
    pieces.append(writer.write(rows(200, 200)))  # reaches the limit: written
    assert writer.held_bytes == 0 and len(pieces[-1]) > 0
    pieces.append(writer.write(rows(400, 100)))  # the file would be closed here; held
    assert pieces[-1] == b""
    path = tmp_path / "f.parquet"
    path.write_bytes(b"".join(pieces) + writer.close())
    assert [rows_ for _, rows_, _ in groups(path)] == [400, 100]
    assert read(path, "SELECT * FROM FILE") == want(0, 500)


def test_a_file_of_one_batch_is_one_row_group(tmp_path: Path) -> None:
    writer = ParquetFiles(TYPES, "zstd", NO_LIMIT).open()
    pieces = [writer.write(rows(0, 1000)), writer.write(rows(1000, 500))]
    footer = writer.close()
    path = tmp_path / "f.parquet"
    path.write_bytes(b"".join(pieces) + footer)
    assert read(path, "SELECT * FROM FILE ORDER BY id") == want(0, 1500)
    assert groups(path) == [(0, 1500, "ZSTD")]


def test_repeating_columns_get_a_dictionary_typed_columns_statistics(tmp_path: Path) -> None:
    writer = ParquetFiles(TYPES, "snappy", NO_LIMIT).open()
    path = tmp_path / "f.parquet"
    path.write_bytes(writer.write(rows(0, 1000)) + writer.close())
    chunks = dict(read(path, "SELECT path_in_schema, (encodings LIKE '%DICTIONARY%', "
                             "stats_min IS NOT NULL) FROM parquet_metadata(FILE)"))
    # (booleans are bit-packed, never a dictionary)
    assert chunks == {"id": (False, True), "level": (True, False),
                      "message": (False, False), "at": (False, True), "ok": (False, True),
                      "ratio": (False, True)}


def test_a_file_without_rows_is_whole_and_typed(tmp_path: Path) -> None:
    writer = ParquetFiles(TYPES, "none", NO_LIMIT).open()
    assert writer.write(rows(0, 0)) == b""
    path = tmp_path / "f.parquet"
    path.write_bytes(writer.close())
    assert read(path, "SELECT count(*) FROM FILE") == [(0,)]
    assert read(path, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM FILE)") \
        == [("id", "BIGINT"), ("level", "VARCHAR"), ("message", "VARCHAR"),
            ("at", "TIMESTAMP WITH TIME ZONE"), ("ok", "BOOLEAN"), ("ratio", "DOUBLE")]


def test_a_table_of_other_names_for_the_same_types_is_cast(tmp_path: Path) -> None:
    writer = ParquetFiles(TYPES, "snappy", NO_LIMIT).open()
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


def test_a_sinks_open_files_hold_at_most_its_budget_together(tmp_path: Path) -> None:
    one = rows(0, 100).nbytes
    files = ParquetFiles(TYPES, "zstd", NO_LIMIT, 1_000_000, held_cap=1 << 30,
                         sink_held=5 * one)
    first, second, third = files.open(), files.open(), files.open()
    pieces = {w: [w.write(rows(0, 100))] for w in (first, second)}  # 2 batches held
    pieces[first].append(first.write(rows(100, 100)))  # 3
    pieces[second].append(second.write(rows(100, 100)))  # 4
    # the fifth batch reaches the sink's budget: its file writes what it holds
    pieces[first].append(first.write(rows(200, 100)))
    assert [len(p) > 4 for p in pieces[first]] == [False, False, True]
    assert first.held_bytes == 0 and second.held_bytes > 0
    # an abandoned file lets its held rows go: the others hold again
    third.write(rows(0, 100))
    third.discard()
    assert third.held_bytes == 0
    pieces[second].append(second.write(rows(200, 100)))  # 3 held with second's own
    assert len(pieces[second][-1]) == 0
    for name, writer in (("a", first), ("b", second)):
        path = tmp_path / f"{name}.parquet"
        path.write_bytes(b"".join(pieces[writer]) + writer.close())
        assert read(path, "SELECT * FROM FILE") == want(0, 300)
    assert [rows_ for _, rows_, _ in groups(tmp_path / "a.parquet")] == [300]
    assert [rows_ for _, rows_, _ in groups(tmp_path / "b.parquet")] == [300]
