"""Config of the s3:// stage and the Timestream / Data Exchange loaders."""

import pytest

from streamer.aws.config import s3_location
from streamer.config.root import parse_config
from tests.helpers import config_data, config_problems

TIMESTREAM = {"type": "timestream", "database": "db1", "table": "tbl", "time_column": "t",
              "dimensions": {"host": "host"}, "measure_name": "m",
              "measures": [{"source": "cpu", "type": "DOUBLE"}]}
DX = {"type": "dataexchange", "data_set_id": "a" * 32}


def config(**sink):
    base = {"type": "stage", "url": "s3://my-bucket/stage/", "columns": ["t", "host", "cpu"]}
    return config_data(sinks={"st": {**base, **sink}})


def test_s3_url_and_defaults():
    sink = parse_config(config(load=TIMESTREAM), {}).sinks["st"]
    assert s3_location(sink.url) == ("my-bucket", "stage/")
    assert s3_location("s3://my-bucket") == ("my-bucket", "")
    assert s3_location("s3://my-bucket/a/b") == ("my-bucket", "a/b/")
    assert sink.s3.part_bytes == 8 * 1024 * 1024 and sink.s3.upload_concurrency == 4
    assert sink.format == "csv" and sink.compression is None  # none for CSV
    assert sink.load.time_unit == "MILLISECONDS"
    assert sink.load.resume is True and sink.load.report.encryption == "SSE_S3"


@pytest.mark.parametrize(("url", "message"), [
    ("s3://Bad_Bucket/x/", "is not a valid bucket name"),
    ("http://host/x", "must be a file:///absolute/dir/ or s3://bucket/prefix/ url"),
    ("s3://my-bucket/a//b/", "no empty path segments"),
])
def test_bad_urls(url, message):
    (line,) = config_problems(config(url=url))
    assert line.startswith("sinks.st.url: ") and message in line


def test_loader_and_url_must_match():
    (line,) = config_problems(config(url="file:///tmp/stage/", load=TIMESTREAM))
    assert "timestream loads objects from S3; it needs an s3:// url" in line
    (line,) = config_problems(config(load={"type": "duckdb", "table": "t"}))
    assert "duckdb reads local stage files; it needs a file:// url" in line


def test_timestream_refuses_gzip_unknown_columns_and_csv_options():
    load = {**TIMESTREAM, "dimensions": {"host": "host", "zone": "zone"},
            "measures": [{"source": "cpu", "type": "DOUBLE"}, {"source": "mem",
                                                               "type": "BIGINT"}]}
    (line,) = config_problems(config(load=load, compression="gzip", csv={"separator": ":"}))
    assert line.startswith("sinks.st: ")
    assert 'a timestream load needs plain CSV files (compression = "none")' in line
    assert "timestream mapping names columns not in columns: zone, mem" in line
    assert "csv.separator: timestream accepts only" in line
    (line,) = config_problems(config(load=TIMESTREAM, url="s3://my-bucket/with space/"))
    assert "timestream needs a key prefix of letters, digits" in line


def test_timestream_fields():
    lines = config_problems(config(load={**TIMESTREAM, "time_unit": "HOURS", "table": "x",
                                  "measures": [{"source": "cpu", "type": "FLOAT"}],
                                  "report": {"encryption": "SSE_KMS"}}))
    assert any(line.startswith("sinks.st.load.time_unit: ") for line in lines)
    assert any(line.startswith("sinks.st.load.table: ") for line in lines)
    assert any(line.startswith("sinks.st.load.measures[0].type: ") for line in lines)
    assert any("kms_key_id is required with encryption" in line for line in lines)


def test_s3_options():
    (line,) = config_problems(config(s3={"access_key_id": "AKID"}))
    assert "set both access_key_id and secret_access_key" in line
    assert "AKID" not in line
    (line,) = config_problems(config(s3={"sse": "SSE_KMS"}))
    assert 'sse = "SSE_KMS" needs sse_kms_key_id' in line
    (line,) = config_problems(config(s3={"part_bytes": 1024}))
    assert line.startswith("sinks.st.s3.part_bytes: ")
    (line,) = config_problems(config(s3={"endpoint_url": "localhost:9000"}))
    assert "must be an http(s)://host[:port] URL" in line
    (line,) = config_problems(config(s3={"endpoint_url": "http://127.0.0.1:70000"}))
    assert line.startswith("sinks.st.s3.endpoint_url: ") and "port 70000 is not 1-65535" in line
    sink = parse_config(config(s3={"access_key_id": "AKID", "secret_access_key": "sk"}),
                        {}).sinks["st"]
    assert "AKID" not in repr(sink) and "sk'" not in repr(sink)


def test_dataexchange_revisions():
    sink = parse_config(config(load=DX), {}).sinks["st"]
    assert sink.load.new_revision and sink.load.max_assets_per_job == 100
    fixed = {**DX, "revision_id": "b" * 32, "finalize": False}
    assert not parse_config(config(load=fixed), {}).sinks["st"].load.new_revision
    (line,) = config_problems(config(load={**DX, "revision_id": "b" * 32}))
    assert "finalize = true needs revision" in line
    (line,) = config_problems(config(load={**DX, "revision": "fixed", "finalize": False}))
    assert 'revision = "fixed" needs revision_id' in line
    (line,) = config_problems(config(load={**DX, "data_set_id": "short"}))
    assert line.startswith("sinks.st.load.data_set_id: ")


@pytest.mark.parametrize(("sink", "message"), [
    ({"format": "parquet"}, 'format: a timestream load reads CSV files only, not parquet'),
    ({"format": "ndjson", "compression": "gzip"},
     'format: a timestream load reads CSV files only, not ndjson'),
    ({"compression": "zstd"}, 'a timestream load needs plain CSV files (compression = "none")'),
])
def test_timestream_refuses_other_formats_and_compression(sink, message):
    (line,) = config_problems(config(load=TIMESTREAM, **sink))
    assert line.startswith("sinks.st: ") and message in line


@pytest.mark.parametrize(("fmt", "compression", "message"), [
    ("csv", "snappy", "compression: 'snappy' is not available for format = \"csv\""),
    ("ndjson", "snappy", "compression: 'snappy' is not available for format = \"ndjson\""),
    ("avro", None, "sinks.st.format: "),
    ("parquet", "lz4", "sinks.st.compression: "),
])
def test_format_and_compression_combinations(fmt, compression, message):
    sink = {"format": fmt} | ({"compression": compression} if compression else {})
    (line,) = config_problems(config(**sink))
    assert message in line


@pytest.mark.parametrize("sink", [
    {"format": "parquet"}, {"format": "parquet", "compression": "zstd"},
    {"format": "ndjson", "compression": "zstd"}, {"compression": "gzip"},
    {"format": "parquet", "compression": "none"}])
def test_any_format_for_data_exchange_and_local_stages(sink):
    parse_config(config(load=DX, **sink), {})
    parse_config(config(url="file:///tmp/stage/", **sink), {})


@pytest.mark.parametrize("where", ["s3", "load", "td"])
def test_credentials_in_an_endpoint_url_are_refused_without_echoing_them(where):
    """`user:password@` in an endpoint URL would be printed by `check` and sent as the
    Host header; credentials have their own keys (before 2026-12-04 accepted)."""
    url = "http://ak:S3cret-Pa55@127.0.0.1:9000"
    if where == "td":
        data = config_data(sinks={"td": {"type": "td", "endpoint": url, "database": "db1",
                                         "table": "tbl", "write_key": "k"}})
        key = "sinks.td.endpoint"
    else:
        data = config(**({"s3": {"endpoint_url": url}, "load": DX} if where == "s3"
                         else {"load": {**DX, "endpoint_url": url}}))
        key = f"sinks.st.{where}.endpoint_url"
    (line,) = config_problems(data)
    assert line.startswith(f"{key}: ")
    assert "user:password" in line and "S3cret-Pa55" not in line
