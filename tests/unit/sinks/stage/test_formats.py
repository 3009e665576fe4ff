"""Stage file formats: names, content types, codecs, the stream compressors and the
typed columns of NDJSON and Parquet."""

from __future__ import annotations

import gzip
import io

import duckdb
import pytest
import zstandard

from streamer.mapping.spec import ColumnSpec
from streamer.sinks.stage.formats import (
    compression_problem,
    compressor,
    content_type,
    duckdb_reader,
    parquet_codec,
    suffix,
)
from streamer.sinks.stage.typed import column_type


@pytest.mark.parametrize(("fmt", "compression", "name", "kind"), [
    ("csv", None, ".csv", "text/csv; charset=utf-8"),
    ("csv", "none", ".csv", "text/csv; charset=utf-8"),
    ("csv", "gzip", ".csv.gz", "application/gzip"),
    ("csv", "zstd", ".csv.zst", "application/zstd"),
    ("ndjson", None, ".ndjson", "application/x-ndjson"),
    ("ndjson", "gzip", ".ndjson.gz", "application/gzip"),
    ("ndjson", "zstd", ".ndjson.zst", "application/zstd"),
    ("parquet", None, ".parquet", "application/vnd.apache.parquet"),
    ("parquet", "zstd", ".parquet", "application/vnd.apache.parquet"),
    ("parquet", "gzip", ".parquet", "application/vnd.apache.parquet"),
])
def test_names_and_content_types(fmt, compression, name, kind):
    assert suffix(fmt, compression) == name
    assert content_type(fmt, compression) == kind


def test_parquet_codecs_and_what_each_format_takes():
    assert parquet_codec(None) == "snappy" and parquet_codec("none") == "none"
    assert parquet_codec("zstd") == "zstd"
    assert compression_problem("parquet", "snappy") is None
    assert compression_problem("csv", "snappy") == (
        "compression: 'snappy' is not available for format = \"csv\" (one of none, gzip, zstd)")
    assert compression_problem("ndjson", None) is None
    assert compressor("parquet", "zstd", 1) is None  # inside the file, not around it
    assert compressor("csv", None, 1) is None


@pytest.mark.parametrize(("compression", "read"), [
    ("gzip", gzip.decompress),
    ("zstd", lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data)),
])
def test_a_file_is_one_stream_of_its_pieces(compression, read):
    stream = compressor("ndjson", compression, 6)
    pieces = [b'{"a":1}\n' * 1000, b"", b'{"b":"\xc3\xa9"}\n' * 3]
    data = b"".join(stream.compress(piece) for piece in pieces) + stream.flush()
    assert read(data) == b"".join(pieces)


@pytest.mark.parametrize(("spec", "ndjson", "parquet"), [
    ({"name": "n", "type": "integer"}, "BIGINT", "BIGINT"),
    ({"name": "d", "type": "double"}, "DOUBLE", "DOUBLE"),
    ({"name": "b", "type": "boolean"}, "BOOLEAN", "BOOLEAN"),
    ({"name": "t", "type": "timestamp"}, "VARCHAR", "TIMESTAMPTZ"),
    ({"name": "t", "type": "timestamp", "format": "epoch_ns"}, "BIGINT", "BIGINT"),
    ({"name": "j", "type": "json"}, "JSON", "VARCHAR"),
    ({"name": "s"}, "VARCHAR", "VARCHAR"),
    ("plain", "VARCHAR", "VARCHAR"),
])
def test_column_types_follow_the_mapping(spec, ndjson, parquet):
    column = ColumnSpec.model_validate(spec)
    assert column_type(column, "ndjson") == ndjson
    assert column_type(column, "parquet") == parquet


@pytest.mark.parametrize(("compression", "name"), [("gzip", "f.csv.gz"), ("zstd", "f.csv.zst")])
def test_concatenated_files_read_as_one(compression, name, tmp_path):
    """Two compressed files joined (`cat a.csv.gz b.csv.gz`): DuckDB and Python read
    every row of both."""
    parts = [b"a,b\r\n1,x\r\n2,y\r\n", b"3,z\r\n"]
    data = b""
    for part in parts:
        stream = compressor("csv", compression, 1)
        data += stream.compress(part) + stream.flush()
    if compression == "gzip":
        assert gzip.decompress(data) == b"".join(parts)
    else:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data),
                                                             read_across_frames=True)
        assert reader.read() == b"".join(parts)
    (tmp_path / name).write_bytes(data)
    rows = duckdb.connect().execute(f"SELECT * FROM read_csv('{tmp_path / name}', "
                                    "header = true, all_varchar = true)").fetchall()
    assert rows == [("1", "x"), ("2", "y"), ("3", "z")]


@pytest.mark.parametrize(("fmt", "long"), [("csv", 40_000_000), ("ndjson", 40_000_000)])
def test_the_loaders_reader_takes_a_row_longer_than_duckdbs_defaults(tmp_path, fmt, long):
    """DuckDB reads a CSV line up to 2 MB and a JSON object up to about 32 MB by
    default: past its buffer a CSV line gave no row and no error."""
    text = "x" * long
    path = tmp_path / f"part.{fmt}"
    if fmt == "csv":
        path.write_text(f"id,text\r\n1,a\r\n2,{text}\r\n3,b\r\n")
    else:
        path.write_text("".join(f'{{"id":{i},"text":"{t}"}}\n'
                                for i, t in ((1, "a"), (2, text), (3, "b"))))
    csv = type("Csv", (), {"separator": ",", "quote": '"', "null_value": ""})()
    reader, params = duckdb_reader(fmt, {"id": "BIGINT", "text": "VARCHAR"}, csv,
                                   "store_rejects = true")
    rows = duckdb.connect().execute(f"SELECT id, length(text) FROM {reader} ORDER BY id",
                                    {"files": [str(path)], **params}).fetchall()
    assert rows == [(1, 1), (2, long), (3, 1)]
