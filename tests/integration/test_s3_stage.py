"""file -> S3 stage on the moto server, `streamer run` as a subprocess: objects and their
contents, multipart and single puts, gzip, SSE, an S3 outage, kill -9 mid-upload."""

from __future__ import annotations

import gzip
import signal
from pathlib import Path

import pytest

from bench.gen import iter_records
from tests.fixtures.moto_s3 import MotoServer, TcpProxy
from tests.helpers import (
    BENCH_COLUMNS,
    Daemon,
    assert_same_rows,
    expected_rows,
    free_port,
    health,
    incomplete_uploads,
    journal,
    read_rows,
    run_cli,
    s3_stage_config,
    scrape,
    staged_keys,
    summary_of,
    wait_until,
    write_ndjson,
)

pytestmark = pytest.mark.timeout(120)
PREFIX = "stage/"
RETRIES = ("streamer_sink_retries_total", (("sink", "st"),))
PUT_SECONDS = ("streamer_stage_upload_seconds_count", (("operation", "put"), ("sink", "st")))


def test_objects_hold_the_input_multipart_and_single(tmp_path: Path, moto_s3: MotoServer,
                                                     s3_bucket: str) -> None:
    records = list(iter_records(60_000, seed=2))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    cfg = s3_stage_config(tmp_path, paths=[source], bucket=s3_bucket,
                          s3_endpoint=moto_s3.endpoint_url, prefix=PREFIX,
                          sink="max_file_records = 40000",
                          s3=f'sse = "SSE_S3"\npart_bytes = {5 * 1024 * 1024}\n'
                             "upload_concurrency = 2")

    done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env())

    assert done.code == 0, done.stderr[-3000:]
    s3 = moto_s3.s3()
    bodies, rows = read_rows(s3, s3_bucket, PREFIX)
    assert_same_rows(rows, expected_rows(records, BENCH_COLUMNS))
    (window,) = journal(tmp_path / "data").values()
    assert window["window"].endswith("Z-0") and window["state"] == "staged"
    assert list(bodies) == [f"{PREFIX}{window['window']}/part-00001.csv",
                            f"{PREFIX}{window['window']}/part-00002.csv"]
    first, second = (s3.head_object(Bucket=s3_bucket, Key=k) for k in bodies)
    assert first["ETag"].endswith('-2"')  # ~6.3 MB: a 5 MiB part and the rest
    assert "-" not in second["ETag"]  # ~3.1 MB < part_bytes: one PutObject
    assert {first["ServerSideEncryption"], second["ServerSideEncryption"]} == {"AES256"}
    assert first["ContentType"].startswith("text/csv")
    assert window["bytes"] == sum(map(len, bodies.values()))
    assert incomplete_uploads(s3, s3_bucket) == []
    sink = done.summary["sinks"]["st"]
    assert sink["delivered"] == 60_000 and sink["files_staged"] == 2
    assert sink["bytes_staged"] == window["bytes"]


def test_gzip_objects_with_sse_kms(tmp_path: Path, moto_s3: MotoServer, s3_bucket: str) -> None:
    records = list(iter_records(12_000, seed=4))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    cfg = s3_stage_config(tmp_path, paths=[source], bucket=s3_bucket,
                          s3_endpoint=moto_s3.endpoint_url, prefix=PREFIX,
                          sink='compression = "gzip"\nmax_file_records = 5000\nwindow_files = 2',
                          s3='sse = "SSE_KMS"\nsse_kms_key_id = "alias/streamer-test"')

    done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env())

    assert done.code == 0, done.stderr[-3000:]
    s3 = moto_s3.s3()
    bodies, rows = read_rows(s3, s3_bucket, PREFIX)
    assert_same_rows(rows, expected_rows(records, BENCH_COLUMNS))
    assert len(bodies) == 3 and all(k.endswith(".csv.gz") for k in bodies)
    assert all(gzip.decompress(b) for b in bodies.values())
    head = s3.head_object(Bucket=s3_bucket, Key=next(iter(bodies)))
    assert head["ContentType"] == "application/gzip"
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms",
                                                                   "alias/streamer-test")
    assert [len(w["files"]) for w in journal(tmp_path / "data").values()] == [2, 1]


def test_s3_outage_loses_nothing(tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
                                 s3_proxy: TcpProxy) -> None:
    records = list(iter_records(9000, seed=9))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records[:3000])
    port = free_port()
    cfg = s3_stage_config(tmp_path, paths=[source], bucket=s3_bucket, follow=True,
                          s3_endpoint=s3_proxy.endpoint_url, prefix=PREFIX,
                          api=f"127.0.0.1:{port}",
                          sink="max_file_age_s = 0.3\nwindow_age_s = 1.0",
                          s3="connect_timeout_s = 1\nread_timeout_s = 2\nrequest_timeout_s = 3")
    daemon = Daemon(cfg, tmp_path / "daemon.log", env=moto_s3.aws_env())
    s3 = moto_s3.s3()
    try:
        wait_until(lambda: staged_keys(s3, s3_bucket, PREFIX), timeout=30,
                   what="the first object")
        s3_proxy.disable("hang")  # requests in flight and new ones time out
        write_ndjson(source, records[3000:6000], mode="ab")
        wait_until(lambda: health(port)[1]["sinks"]["st"]["state"] == "retrying",
                   timeout=30, what="/health to show the sink retrying")
        s3_proxy.disable("reset")  # ("refuse" can self-connect to the freed port)
        write_ndjson(source, records[6000:], mode="ab")
        wait_until(lambda: health(port)[1]["sinks"]["st"]["in_flight"] > 0
                   and scrape(port).get(RETRIES, 0) >= 3, timeout=30, what="records waiting for S3")
        s3_proxy.enable()
        wait_until(lambda: health(port)[1]["sinks"]["st"]["in_flight"] == 0
                   and health(port)[1]["sinks"]["st"]["state"] == "ok",
                   timeout=60, what="everything staged after the outage")
        assert PUT_SECONDS in scrape(port)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
    _, rows = read_rows(s3, s3_bucket, PREFIX)
    assert_same_rows(rows, expected_rows(records, BENCH_COLUMNS))
    sink = summary_of(daemon.log)["sinks"]["st"]
    assert sink["delivered"] == 9000 and sink["received"] == 9000
    assert "retrying in" in daemon.log


def test_kill_mid_multipart_upload_then_restart(tmp_path: Path, moto_s3: MotoServer,
                                                s3_bucket: str, s3_proxy: TcpProxy) -> None:
    records = list(iter_records(80_000, seed=6))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    cfg = s3_stage_config(tmp_path, paths=[source], bucket=s3_bucket,
                          s3_endpoint=s3_proxy.endpoint_url, prefix=PREFIX,
                          s3=f"part_bytes = {5 * 1024 * 1024}")
    s3 = moto_s3.s3()
    daemon = Daemon(cfg, tmp_path / "daemon.log", env=moto_s3.aws_env())
    try:
        wait_until(lambda: incomplete_uploads(s3, s3_bucket), timeout=30, interval=0.02,
                   what="a multipart upload to start")
        s3_proxy.disable("hang")  # nothing completes from now on
        daemon.kill()
    finally:
        daemon.stop()
    s3_proxy.enable()
    (left,) = incomplete_uploads(s3, s3_bucket)
    assert staged_keys(s3, s3_bucket, PREFIX) == []

    done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env())

    assert done.code == 0, done.stderr[-3000:]
    assert incomplete_uploads(s3, s3_bucket) == []
    assert f"aborting incomplete upload of s3://{s3_bucket}/{left['Key']}" in done.stderr
    _, rows = read_rows(s3, s3_bucket, PREFIX)
    assert_same_rows(rows, expected_rows(records, BENCH_COLUMNS))  # all of it, once
    states = sorted(w["state"] for w in journal(tmp_path / "data").values())
    assert states == ["staged", "staged"]  # the killed run's window closed empty
