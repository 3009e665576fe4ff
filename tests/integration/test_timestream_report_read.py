"""A FAILED Timestream task's error report read from S3 (moto) through a proxy that
trickles every answer in: the read is cut at `s3.request_timeout_s`, logged, and the
load goes on (before 2026-12-05 the plain S3 client waited as long as the trickle)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import urlparse

import orjson
import pytest

from streamer.aws.clients import AwsClients
from streamer.config.root import parse_config
from streamer.core.deadletter import DeadLetters
from streamer.loaders.timestream import TimestreamLoader
from streamer.observability.metrics import SinkStats
from streamer.sinks.stage.journal import Window
from tests.fixtures.moto_s3 import MotoServer
from tests.helpers.fault_proxy import FaultProxy

pytestmark = pytest.mark.timeout(60)


def loader(tmp_path: Path, moto: MotoServer, bucket: str, endpoint: str) -> TimestreamLoader:
    sink = {"type": "stage", "url": f"s3://{bucket}/stage/", "columns": ["t", "host", "cpu"],
            "s3": {"endpoint_url": endpoint, "region": moto.region, "request_timeout_s": 1,
                   "access_key_id": moto.access_key, "secret_access_key": moto.secret_key},
            "load": {"type": "timestream", "database": "db1", "table": "tbl",
                     "time_column": "t", "dimensions": {"host": "h"}, "measure_name": "m",
                     "measures": [{"source": "cpu", "type": "DOUBLE"}]}}
    cfg = parse_config({"data_dir": str(tmp_path), "sources": {"f": {
        "type": "file", "paths": ["/x"]}}, "sinks": {"st": sink}}, {}).sinks["st"]
    return TimestreamLoader(cfg.load, cfg, AwsClients(cfg.s3), SinkStats(), "st",
                            DeadLetters(tmp_path / "dead"))


def test_a_report_that_trickles_in_is_cut_at_the_request_timeout(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        caplog: pytest.LogCaptureFixture) -> None:
    window = Window("20261205T000000000000Z-0")
    report = {"fileErrors": [{"fileName": f"s3://{s3_bucket}/stage/{window.id}/part-1.csv",
                              "errors": [{"reason": "bad", "lineRanges": [[2, 2]]}]}]}
    s3 = moto_s3.s3()
    s3.put_object(Bucket=s3_bucket, Key=f"stage/_reports/T1/report-{'x' * 500}.json",
                  Body=orjson.dumps(report))
    s3.put_object(Bucket=s3_bucket, Key=f"stage/{window.id}/part-1.csv",
                  Body=b"t,host,cpu\n1,a,x\n")
    with FaultProxy(int(urlparse(moto_s3.endpoint_url).port or 0), "slow",
                    delay=0.2) as proxy:
        ts = loader(tmp_path, moto_s3, s3_bucket, proxy.url)

        async def read() -> None:
            try:
                with caplog.at_level(logging.WARNING, "streamer.loader.timestream"):
                    await ts._dead_letter_report(window, "T1")
            finally:
                await ts._clients.close()

        asyncio.run(read())
    (warning,) = [r.getMessage() for r in caplog.records if "error report" in r.getMessage()]
    assert "no whole answer within s3.request_timeout_s = 1s" in warning, warning
    assert moto_s3.secret_key not in warning
