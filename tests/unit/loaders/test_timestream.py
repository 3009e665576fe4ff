"""The CreateBatchLoadTask request the Timestream loader builds, checked against the
botocore service model (types, required members, enums, patterns) -- no network."""

from pathlib import Path

from streamer.aws.clients import AwsClients
from streamer.config.root import parse_config
from streamer.core.deadletter import DeadLetters
from streamer.loaders.timestream import TimestreamLoader, client_token
from streamer.observability.metrics import SinkStats
from streamer.sinks.stage.journal import Window
from tests.emulators.batchload_common import ModelValidator


def loader(**load) -> TimestreamLoader:
    sink = {"type": "stage", "url": "s3://my-bucket/stage/", "columns": ["t", "host", "cpu"],
            "csv": {"null_value": "NULL"},
            "load": {"type": "timestream", "database": "db1", "table": "tbl",
                     "time_column": "t", "dimensions": {"host": "h"}, "measure_name": "m",
                     "measures": [{"source": "cpu", "name": "cpu_pct", "type": "DOUBLE"}],
                     **load}}
    cfg = parse_config({"data_dir": "/tmp/x", "sources": {"f": {"type": "file",
                                                                "paths": ["/x"]}},
                        "sinks": {"st": sink}}, {}).sinks["st"]
    return TimestreamLoader(cfg.load, cfg, AwsClients(cfg.s3), SinkStats(), "st",
                            DeadLetters(Path("/nonexistent")))


def test_request_matches_the_service_model():
    window = Window("20240102T030405123456Z-shard_1")
    ts = loader(record_version=3,
                report={"bucket": "reports-bucket", "encryption": "SSE_KMS",
                        "kms_key_id": "arn:aws:kms:us-east-1:1:key/x"})
    request = {**ts.request(window), "ClientToken": client_token("my-bucket", "p/")}
    assert ModelValidator("timestream-write").input_errors("CreateBatchLoadTask",
                                                           request) is None
    source = request["DataSourceConfiguration"]
    assert source["DataSourceS3Configuration"] == {
        "BucketName": "my-bucket", "ObjectKeyPrefix": f"stage/{window.id}/"}
    assert source["CsvConfiguration"]["NullValue"] == "NULL"
    assert request["ReportConfiguration"]["ReportS3Configuration"] == {
        "BucketName": "reports-bucket", "ObjectKeyPrefix": "stage/_reports/",
        "EncryptionOption": "SSE_KMS", "KmsKeyId": "arn:aws:kms:us-east-1:1:key/x"}
    model = request["DataModelConfiguration"]["DataModel"]
    assert model["DimensionMappings"] == [{"SourceColumn": "host", "DestinationColumn": "h"}]
    assert model["MultiMeasureMappings"]["MultiMeasureAttributeMappings"] == [
        {"SourceColumn": "cpu", "TargetMultiMeasureAttributeName": "cpu_pct",
         "MeasureValueType": "DOUBLE"}]
    assert request["RecordVersion"] == 3


def test_client_token_is_stable_and_fits():
    one = client_token("my-bucket", "stage/20240102T030405123456Z-" + "x" * 64 + "/")
    assert one == client_token("my-bucket", "stage/20240102T030405123456Z-" + "x" * 64 + "/")
    assert len(one) == 64
    assert one != client_token("other-bucket", "stage/20240102T030405123456Z-" + "x" * 64)
