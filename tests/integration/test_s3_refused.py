"""An s3:// stage that S3 refuses for good (no such bucket, access denied, bad
credentials) is not a passing network error: a one-shot run says so before reading
anything (exit 2) or, refused later, stops with the summary saying what is not
staged (exit 1); a daemon retries with /health degraded naming the sink and the
error, and recovers once the bucket exists. moto in server mode."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from bench.gen import iter_records
from tests.fixtures.moto_s3 import MotoServer
from tests.helpers import (
    BENCH_COLUMNS,
    Daemon,
    assert_same_rows,
    base_config,
    expected_rows,
    free_port,
    health,
    read_rows,
    run_cli,
    s3_stage_config,
    stage_sink,
    summary_of,
    toml_keys,
    wait_until,
    write_config,
    write_ndjson,
)
from tests.helpers.process import REPO, streamer_cmd

pytestmark = pytest.mark.timeout(90)
PREFIX = "stage/"
SECRET = "refused-test-secret-5c1d"  # moto does not check it: it must appear nowhere


def _sink(port: int) -> dict:
    """The stage sink's /health entry; {} while the API is not listening yet."""
    try:
        body = health(port)[1]
    except OSError:
        return {}
    # workers > 1: the supervisor's /health has each worker's; stdin is read by worker 0
    return body.get("workers", {}).get("0", body).get("sinks", {}).get("st", {})


def _env(moto: MotoServer) -> dict[str, str]:
    return {**moto.aws_env(), "AWS_SECRET_ACCESS_KEY": SECRET}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_one_shot_run_refused_at_start_reads_nothing(tmp_path: Path, moto_s3: MotoServer,
                                                        workers: int) -> None:
    source = tmp_path / "in.ndjson"
    write_ndjson(source, list(iter_records(10, seed=1)))
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    cfg = s3_stage_config(tmp_path, paths=[source], bucket=missing,
                          s3_endpoint=moto_s3.endpoint_url, prefix=PREFIX)
    cfg.write_text(f"workers = {workers}\n" + cfg.read_text())

    done = run_cli("run", "-c", str(cfg), env=_env(moto_s3), timeout=60)

    assert done.code == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.strip().splitlines() if " INFO " not in line]
    refusal = (f"sinks.st.url: s3://{missing}/{PREFIX}: NoSuchBucket: The specified bucket "
               "does not exist; nothing was read")
    if workers == 1:  # then the summary line
        assert lines[:-1] == [refusal]
        assert done.summary["exit_code"] == 2 and done.summary["sinks"]["st"]["received"] == 0
    else:  # no worker was started
        assert lines == [refusal]
    assert not (tmp_path / "data" / "checkpoints").exists()
    assert SECRET not in done.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_a_one_shot_run_refused_later_stops_and_names_what_is_not_staged(
        tmp_path: Path, moto_s3: MotoServer, workers: int) -> None:
    bucket = moto_s3.create_bucket()
    port = free_port()
    cfg = write_config(tmp_path, f"workers = {workers}\n"
                       + base_config(tmp_path, api=f"127.0.0.1:{port}")
                       + "[sources.in]\n" + toml_keys(type="stdin")
                       + stage_sink(tmp_path, name="st", url=f"s3://{bucket}/{PREFIX}",
                                    columns=BENCH_COLUMNS, max_file_age_s=None, fsync=None)
                       + "[sinks.st.s3]\n"
                       + toml_keys(endpoint_url=moto_s3.endpoint_url, region=moto_s3.region))
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(streamer_cmd("run", "-c", str(cfg), "--no-progress"), cwd=REPO,
                                stdin=subprocess.PIPE, stdout=log, stderr=log,
                                env={**os.environ, **_env(moto_s3)})
        try:
            lines = b"".join(b'{"id": "r%d", "value": %d}\n' % (i, i) for i in range(25))
            proc.stdin.write(lines)
            proc.stdin.flush()
            wait_until(lambda: _sink(port).get("in_flight") == 25, timeout=30,
                       what="25 records in the open file")
            moto_s3.s3().delete_bucket(Bucket=bucket)
            proc.stdin.close()  # the end of the input: the file is put, S3 refuses it
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    text = log_path.read_text()
    assert code == 1, text[-3000:]
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if "NoSuchBucket" in line]
    # the put of the file, or the start-up listing if the SDK came up only now
    assert errors and "ERROR streamer: stage sink st: " in errors[-1]
    assert "stopping" in errors[-1] and "retrying in" not in text
    summary = summary_of(text)
    assert summary["exit_code"] == 1
    assert summary["sinks"]["st"]["in_flight"] == 25
    assert summary["sinks"]["st"]["delivered"] == 0
    assert SECRET not in text


def test_a_daemon_refused_is_degraded_then_recovers(tmp_path: Path,
                                                    moto_s3: MotoServer) -> None:
    source = tmp_path / "in.ndjson"
    records = list(iter_records(40, seed=3))
    write_ndjson(source, records)
    bucket = f"created-later-{uuid.uuid4().hex[:12]}"
    port = free_port()
    cfg = s3_stage_config(tmp_path, paths=[source], bucket=bucket, follow=True,
                          s3_endpoint=moto_s3.endpoint_url, prefix=PREFIX,
                          api=f"127.0.0.1:{port}", sink="max_file_age_s = 0.3")
    daemon = Daemon(cfg, tmp_path / "daemon.log", env=_env(moto_s3))
    try:
        wait_until(lambda: _sink(port).get("state") == "degraded", timeout=30,
                   what="/health degraded by the missing bucket")
        status, body = health(port)
        assert status == 200 and body["status"] == "degraded"
        assert "NoSuchBucket" in body["sinks"]["st"]["last_error"]
        assert SECRET not in str(body)
        moto_s3.s3().create_bucket(Bucket=bucket)
        wait_until(lambda: health(port)[1]["status"] == "ok"
                   and read_rows(moto_s3.s3(), bucket, PREFIX)[1],
                   timeout=60, what="everything staged once the bucket exists")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.log[-3000:]
    finally:
        daemon.stop()
    _, rows = read_rows(moto_s3.s3(), bucket, PREFIX)
    assert_same_rows(rows, expected_rows(records, BENCH_COLUMNS))
    assert summary_of(daemon.log)["sinks"]["st"]["delivered"] == 40
    assert "refused: the bucket or the credentials need an operator" in daemon.log
    assert SECRET not in daemon.log
