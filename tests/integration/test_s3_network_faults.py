"""The network between streamer and S3 misbehaves (tests/helpers/fault_proxy.py): the
first connections of a one-shot run answer `200 OK` with what S3 never sends (a captive
portal's HTML, half a JSON body), reset mid-answer or stall, on single puts and on every
step of a multipart upload.  Every row is staged once, exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.moto_s3 import MotoServer
from tests.helpers import (
    BENCH_COLUMNS,
    assert_same_rows,
    expected_rows,
    make_records,
    read_rows,
    run_cli,
    s3_stage_config,
    staged_keys,
    write_ndjson,
)
from tests.helpers.fault_proxy import FaultProxy

pytestmark = pytest.mark.timeout(120)
MODES = ("portal", "truncated_json", "rst", "portal", "stall", "portal")


def test_answers_that_are_not_s3s_are_retried_and_every_row_is_staged(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str) -> None:
    records = make_records(24_000, seed=29)
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    with FaultProxy(moto_s3.port, MODES, limit=len(MODES)) as proxy:
        # a file of 16,000 records (~6 MB) goes up in two parts, one of 8,000 in one put
        config = s3_stage_config(
            tmp_path, paths=[source], bucket=s3_bucket, s3_endpoint=proxy.url, prefix="st/",
            sink="max_file_records = 16000\nwindow_files = 2",
            s3="connect_timeout_s = 1\nread_timeout_s = 2\nrequest_timeout_s = 3\n"
               "part_bytes = 5242880")
        config.write_text("oneshot_give_up_s = 60\n"
                          + config.read_text().replace("follow = true", "follow = false"))

        done = run_cli("run", "-c", str(config), env=moto_s3.aws_env(), timeout=100)

        faulted = proxy.faulted
    assert done.code == 0, done.stderr[-3000:]
    s3 = moto_s3.s3()
    _, rows = read_rows(s3, s3_bucket, "st/")
    assert_same_rows(rows, expected_rows(records, BENCH_COLUMNS))
    assert len(staged_keys(s3, s3_bucket, "st/")) == 2
    assert faulted == len(MODES)
    assert "that is not S3's answer" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.summary["sinks"]["st"]["delivered"] == len(records)
