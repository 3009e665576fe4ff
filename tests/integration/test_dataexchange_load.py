"""file -> S3 stage (moto) -> Data Exchange import jobs (our emulator), `streamer run` as a
subprocess: every staged key becomes an asset, jobs split, revisions finalized, restart."""

from __future__ import annotations

import math
import signal
from pathlib import Path
from typing import Any

import boto3
import pytest

from bench.gen import iter_records
from tests.fixtures.batchload import BatchLoadEmulator
from tests.fixtures.moto_s3 import MotoServer
from tests.helpers import (
    BENCH_COLUMNS,
    Daemon,
    assert_same_rows,
    checkpoint_offset,
    expected_rows,
    free_port,
    health,
    journal,
    read_rows,
    run_cli,
    staged_keys,
    summary_of,
    wait_until,
    write_ndjson,
)
from tests.helpers.dataexchange import PREFIX, assets_by_revision, dx_config
from tests.helpers.fault_proxy import FaultProxy

pytestmark = pytest.mark.timeout(120)

def check_windows(emu: BatchLoadEmulator, data_set: str, bucket: str, s3: Any,
                  data: Path, per_job: int) -> None:
    windows = journal(data)
    revisions = {r["Id"]: r for r in emu.revisions(data_set)}
    assets = assets_by_revision(emu, data_set)
    keys = staged_keys(s3, bucket, PREFIX)
    assert sorted(k for ks in assets.values() for k in ks) == keys  # every key, once
    jobs = [j for j in emu.jobs() if j["State"] == "COMPLETED"]
    for window in windows.values():
        assert window["state"] == "loaded"
        revision = revisions[window["revision_id"]]
        assert revision["Finalized"] is True
        assert window["window"] in revision["Comment"]
        mine = [f"{PREFIX}{window['window']}/{name}" for name in window["files"]]
        assert assets[revision["Id"]] == mine
        sizes = sorted(len(j["Details"]["ImportAssetsFromS3"]["AssetSources"]) for j in jobs
                       if j["Details"]["ImportAssetsFromS3"]["RevisionId"] == revision["Id"])
        assert len(sizes) == math.ceil(len(mine) / per_job) and max(sizes) <= per_job
        assert sum(sizes) == len(mine)
    assert len(revisions) == len(windows)


def test_every_staged_key_becomes_an_asset(tmp_path: Path, moto_s3: MotoServer,
                                           s3_bucket: str,
                                           batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    emu.configure(job_delay=0.05)
    # a lost StartJob answer: the retried start meets a running job (ConflictException)
    emu.set_faults("dataexchange", script=[{"operation": "StartJob", "count": 1,
                                            "error": "InternalServerException", "after": True}])
    data_set = emu.register_data_set(name="streamer-test")
    records = list(iter_records(12_000, seed=8))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    cfg = dx_config(tmp_path, moto_s3, emu, s3_bucket, source, data_set, per_job=2)

    done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env())

    assert done.code == 0, done.stderr[-3000:]
    s3 = moto_s3.s3()
    _, rows = read_rows(s3, s3_bucket, PREFIX)
    assert_same_rows(rows, expected_rows(records, BENCH_COLUMNS))
    assert len(staged_keys(s3, s3_bucket, PREFIX)) == 12
    check_windows(emu, data_set, s3_bucket, s3, tmp_path / "data", per_job=2)
    assert [len(w["files"]) for w in journal(tmp_path / "data").values()] == [5, 5, 2]
    assert len(emu.jobs()) == 3 + 3 + 1
    assert emu.calls()["dataexchange"]["StartJob"] == 7 + 1
    sink = done.summary["sinks"]["st"]
    assert sink["load_jobs_completed"] == 7 and sink["load_assets_imported"] == 12
    assert sink["windows_loaded"] == 3 and sink["rows_loaded"] == 12_000


def test_missing_object_fails_the_job_with_its_key(tmp_path: Path, moto_s3: MotoServer,
                                                   s3_bucket: str,
                                                   batchload_emulator: BatchLoadEmulator
                                                   ) -> None:
    emu = batchload_emulator
    emu.configure(job_delay=2.0)
    data_set = emu.register_data_set()
    records = list(iter_records(2500, seed=1))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    cfg = dx_config(tmp_path, moto_s3, emu, s3_bucket, source, data_set, per_job=5)
    s3 = moto_s3.s3()
    daemon = Daemon(cfg, tmp_path / "daemon.log", env=moto_s3.aws_env())
    try:
        wait_until(lambda: any(j["State"] == "IN_PROGRESS" for j in emu.jobs()), timeout=30,
                   what="the import job to start")
        gone = staged_keys(s3, s3_bucket, PREFIX)[1]
        s3.delete_object(Bucket=s3_bucket, Key=gone)  # before the job reads it
        assert daemon.wait(60) == 1  # a one-shot run with a failed window
    finally:
        daemon.stop()
    (window,) = journal(tmp_path / "data").values()
    assert window["state"] == "failed" and "ERROR" in window["error"]
    (job,) = emu.jobs()
    assert job["State"] == "ERROR"
    assert f"s3://{s3_bucket}/{gone}" in daemon.log and "RESOURCE_NOT_FOUND" in daemon.log
    (revision,) = emu.revisions(data_set)
    assert revision["Finalized"] is False


def test_restart_continues_the_journaled_jobs(tmp_path: Path, moto_s3: MotoServer,
                                              s3_bucket: str,
                                              batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    emu.configure(job_delay=1.5)
    data_set = emu.register_data_set()
    records = list(iter_records(6000, seed=12))
    source = tmp_path / "in.ndjson"
    size = write_ndjson(source, records)
    cfg = dx_config(tmp_path, moto_s3, emu, s3_bucket, source, data_set, per_job=2)
    data = tmp_path / "data"
    daemon = Daemon(cfg, tmp_path / "daemon.log", env=moto_s3.aws_env())
    try:
        wait_until(lambda: any(w.get("jobs") for w in journal(data).values())
                   and checkpoint_offset(data) == size, timeout=30,
                   what="a journaled import job")
        daemon.kill()
    finally:
        daemon.stop()
    jobs_before = {j["Id"] for j in emu.jobs()}
    emu.configure(job_delay=0.05)

    done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env())

    assert done.code == 0, done.stderr[-3000:]
    assert jobs_before <= {j["Id"] for j in emu.jobs()}
    assert len(emu.jobs()) == 3 + 1  # windows of 5 and 1 files: no job created twice
    assert all(j["State"] == "COMPLETED" for j in emu.jobs())
    check_windows(emu, data_set, s3_bucket, moto_s3.s3(), data, per_job=2)
    assert "resuming window" in done.stderr


def test_a_forced_exit_during_a_load_names_the_unloaded_windows(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    """A job that does not finish by the shutdown deadline: exit 1, and the summary
    says which windows are not loaded (the journal resumes them at the next start)."""
    emu = batchload_emulator
    emu.configure(job_delay=600)  # never finishes within the test
    data_set = emu.register_data_set()
    records = list(iter_records(1500, seed=13))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    cfg = dx_config(tmp_path, moto_s3, emu, s3_bucket, source, data_set, per_job=2)
    api = free_port()
    cfg.write_text(cfg.read_text().replace("shutdown_timeout_s = 30", "shutdown_timeout_s = 1")
                   .replace('listen = ""', f'listen = "127.0.0.1:{api}"'))
    data = tmp_path / "data"
    daemon = Daemon(cfg, tmp_path / "daemon.log", env=moto_s3.aws_env())
    try:
        wait_until(lambda: any(w.get("jobs") for w in journal(data).values()), timeout=30,
                   what="a journaled import job")
        status, body = health(api)  # a load under way is shown, and is no failure
        assert status == 200 and body["status"] == "ok"
        assert body["sinks"]["st"]["unloaded_windows"] == dict.fromkeys(journal(data), "loading")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 1, daemon.log[-3000:]
    finally:
        daemon.stop()
    sink = summary_of(daemon.log)["sinks"]["st"]
    windows = journal(data)
    assert {w["state"] for w in windows.values()} == {"loading"}
    assert sink["unloaded_windows"] == dict.fromkeys(windows, "loading")
    assert "failed_windows" not in sink and "windows_loaded" not in sink


def _seed_import(emu: BatchLoadEmulator, moto: MotoServer, bucket: str,
                 data_set: str) -> tuple[Any, str, str]:
    """Someone else's import of one object into a new revision, started: (the Data
    Exchange client, the revision, the job)."""
    dx = boto3.client("dataexchange", endpoint_url=emu.endpoint_url, region_name=moto.region,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    revision = dx.create_revision(DataSetId=data_set)["Id"]
    moto.s3().put_object(Bucket=bucket, Key="other/seed.csv", Body=b"a\n1\n")
    job = dx.create_job(Type="IMPORT_ASSETS_FROM_S3", Details={"ImportAssetsFromS3": {
        "AssetSources": [{"Bucket": bucket, "Key": "other/seed.csv"}],
        "DataSetId": data_set, "RevisionId": revision}})["Id"]
    dx.start_job(JobId=job)
    return dx, revision, job


def _finalized_revision(emu: BatchLoadEmulator, moto: MotoServer, bucket: str,
                        data_set: str) -> str:
    """A revision with one asset, finalized (by someone else: it takes no more assets)."""
    dx, revision, job = _seed_import(emu, moto, bucket, data_set)
    wait_until(lambda: dx.get_job(JobId=job)["State"] == "COMPLETED", timeout=10,
               what="the seed import")
    dx.update_revision(DataSetId=data_set, RevisionId=revision, Finalized=True)
    return revision


@pytest.mark.parametrize("target", ["finalized revision", "missing data set"])
def test_a_target_that_cannot_take_assets_fails_the_window(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator, target: str) -> None:
    """CreateJob into a finalized revision (409 Conflict) or CreateRevision in a data set
    that does not exist (404): AWS refuses the request as it is, so the window fails
    with the cause and a one-shot run ends (before 2026-12-04 both were retried for
    ever: the run never ended, the window stayed `loading`)."""
    emu = batchload_emulator
    emu.configure(job_delay=0.05)
    data_set = emu.register_data_set()
    if target == "finalized revision":
        revision = _finalized_revision(emu, moto_s3, s3_bucket, data_set)
        extra, cause = f'revision_id = "{revision}"\nfinalize = false', "is finalized"
    else:
        data_set, extra, cause = "f" * 32, "", "not found"
    source = tmp_path / "in.ndjson"
    write_ndjson(source, list(iter_records(500, seed=3)))
    cfg = dx_config(tmp_path, moto_s3, emu, s3_bucket, source, data_set, per_job=5,
                    extra=extra)

    done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env(), timeout=60)

    assert done.code == 1, done.stderr[-3000:]
    (window,) = journal(tmp_path / "data").values()
    assert window["state"] == "failed" and cause in window["error"]
    sink = done.summary["sinks"]["st"]
    assert cause in sink["failed_windows"][window["window"]]
    assert "unloaded_windows" not in sink
    assert len(staged_keys(moto_s3.s3(), s3_bucket, PREFIX)) == 1  # kept for `loads retry`


def test_a_job_refused_by_the_concurrent_jobs_quota_is_created_again(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    """Another import in progress takes the account's only slot: CreateJob answers
    ServiceLimitExceeded on the concurrent jobs quota, and is tried again until the
    slot is free (before 2026-12-04 the window failed: that quota clears by itself,
    unlike a size limit)."""
    emu = batchload_emulator
    # the seeded job holds the only slot until the run's CreateJob was refused
    emu.configure(job_delay=0.5, max_active_jobs=1, hold_jobs_until_refused=True)
    data_set = emu.register_data_set()
    dx, other, busy = _seed_import(emu, moto_s3, s3_bucket, data_set)
    records = list(iter_records(500, seed=5))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    cfg = dx_config(tmp_path, moto_s3, emu, s3_bucket, source, data_set, per_job=5)

    done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env(), timeout=60)

    assert done.code == 0, done.stderr[-3000:]
    assert dx.get_job(JobId=busy)["State"] == "COMPLETED"
    s3 = moto_s3.s3()
    _, rows = read_rows(s3, s3_bucket, PREFIX)
    assert_same_rows(rows, expected_rows(records, BENCH_COLUMNS))
    (window,) = journal(tmp_path / "data").values()
    assert window["state"] == "loaded"
    assets = assets_by_revision(emu, data_set)
    assert assets[window["revision_id"]] == staged_keys(s3, s3_bucket, PREFIX)
    assert assets[other] == ["other/seed.csv"]
    assert emu.calls()["dataexchange"]["CreateJob"] >= 2 + 1  # refused, then created
    sink = done.summary["sinks"]["st"]
    assert sink["load_jobs_completed"] == 1 and sink["windows_loaded"] == 1
    assert "failed_windows" not in sink


def test_a_job_that_vanishes_is_created_again_and_the_window_loads(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    """A journaled import job that Data Exchange no longer knows (GetJob answers
    ResourceNotFoundException: expired, or removed) is created again for its keys (an
    import is idempotent: a key imported twice replaces its asset).  Before 2026-12-05
    GetJob's 404 was retried for ever: a daemon's later windows never loaded, a one-shot
    run gave up (exit 1) and every later run polled the same vanished job again."""
    emu = batchload_emulator
    emu.configure(job_delay=600)  # the first job would never finish in the test
    data_set = emu.register_data_set()
    records = list(iter_records(1500, seed=21))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    cfg = dx_config(tmp_path, moto_s3, emu, s3_bucket, source, data_set, per_job=5)
    cfg.write_text("oneshot_give_up_s = 15\n" + cfg.read_text())
    daemon = Daemon(cfg, tmp_path / "daemon.log", env=moto_s3.aws_env())
    try:
        wait_until(lambda: any(j["State"] == "IN_PROGRESS" for j in emu.jobs()), timeout=30,
                   what="the import job to start")
        (vanished,) = [j["Id"] for j in emu.jobs()]
        emu.configure(job_delay=0.05)
        emu.forget_job(vanished)
        assert daemon.wait(60) == 0, daemon.log[-3000:]
    finally:
        daemon.stop()
    s3 = moto_s3.s3()
    _, rows = read_rows(s3, s3_bucket, PREFIX)
    assert_same_rows(rows, expected_rows(records, BENCH_COLUMNS))
    (window,) = journal(tmp_path / "data").values()
    assert window["state"] == "loaded"
    (job,) = emu.jobs()  # the vanished one is not listed
    assert job["State"] == "COMPLETED" and job["Id"] != vanished
    assert assets_by_revision(emu, data_set)[window["revision_id"]] == \
        staged_keys(s3, s3_bucket, PREFIX)
    assert f"import job {vanished} no longer exists" in daemon.log


def test_a_job_that_never_ends_fails_the_window_at_max_wait_and_retry_resumes_it(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    """An import job held IN_PROGRESS: GetJob answers, so nothing failed and a one-shot
    run waited for ever (before 2026-12-05). Now the window fails at `max_wait_s`
    (exit 1, the job and its state named); `loads retry` follows the same job, which
    has completed meanwhile: no second job, every key an asset once."""
    emu = batchload_emulator
    emu.configure(hold_jobs_until_refused=True)  # no quota set: held until released
    data_set = emu.register_data_set()
    records = list(iter_records(300, seed=23))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    cfg = dx_config(tmp_path, moto_s3, emu, s3_bucket, source, data_set, per_job=5,
                    extra="max_wait_s = 2")

    held = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env(), timeout=60)

    assert held.code == 1, held.stderr[-3000:]
    (job,) = emu.jobs()
    assert job["State"] == "IN_PROGRESS"
    (window,) = journal(tmp_path / "data").values()
    assert window["state"] == "failed" and window["jobs"] == {"0": job["Id"]}
    errors = [line for line in held.stderr.splitlines() if " ERROR " in line
              and "max_wait_s" in line]
    assert len(errors) == 1, held.stderr[-3000:]
    for part in ("sink st", window["window"], job["Id"], "IN_PROGRESS", "max_wait_s = 2"):
        assert part in errors[0], errors
    assert held.summary["sinks"]["st"]["load_jobs_timed_out"] == 1

    emu.configure(hold_jobs_until_refused=False)
    wait_until(lambda: emu.jobs()[0]["State"] == "COMPLETED", timeout=30)
    assert run_cli("loads", "retry", "-c", str(cfg)).code == 0
    again = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env(), timeout=60)

    assert again.code == 0, again.stderr[-3000:]
    assert [j["Id"] for j in emu.jobs()] == [job["Id"]]
    check_windows(emu, data_set, s3_bucket, moto_s3.s3(), tmp_path / "data", per_job=5)


def test_an_answer_that_trickles_in_is_cut_at_the_request_timeout(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    """The first Data Exchange connections answer one byte every 0.2 s (a slowloris
    proxy, a congested link): no read waits longer than `read_timeout_s`, yet an answer
    takes minutes.  Each call is bounded by `s3.request_timeout_s` as S3's requests are,
    then retried.  Before 2026-12-05 the loaders' calls had no bound: the load waited
    out the trickle (a one-shot run gave up, exit 1; a daemon's windows waited)."""
    emu = batchload_emulator
    emu.configure(job_delay=0.05)
    data_set = emu.register_data_set()
    records = list(iter_records(1000, seed=23))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    with FaultProxy(emu.port, "slow", limit=2, delay=0.2) as proxy:
        cfg = dx_config(tmp_path, moto_s3, emu, s3_bucket, source, data_set, per_job=5)
        cfg.write_text("oneshot_give_up_s = 40\n" + cfg.read_text()
                       .replace(emu.endpoint_url, proxy.url)
                       .replace("[sinks.st.s3]", "[sinks.st.s3]\nrequest_timeout_s = 3"))

        done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env(), timeout=100)

        assert proxy.faulted == 2
    assert done.code == 0, done.stderr[-3000:]
    (window,) = journal(tmp_path / "data").values()
    assert window["state"] == "loaded"
    assert assets_by_revision(emu, data_set)[window["revision_id"]] == \
        staged_keys(moto_s3.s3(), s3_bucket, PREFIX)
    assert "no whole answer within s3.request_timeout_s = 3s" in done.stderr
