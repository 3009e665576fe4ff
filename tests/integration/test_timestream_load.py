"""file -> S3 stage (moto) -> Timestream batch load (our emulator), `streamer run` as a
subprocess: contents, failed tasks, PROGRESS_STOPPED, kill -9 around the create."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from bench.gen import COLUMN_TYPES, iter_records
from tests.fixtures.batchload import BatchLoadEmulator
from tests.fixtures.moto_s3 import MotoServer
from tests.helpers import (
    BENCH_COLUMNS,
    Daemon,
    checkpoint_offset,
    journal,
    list_keys,
    read_rows,
    run_cli,
    s3_stage_config,
    summary_of,
    toml_value,
    wait_until,
    write_ndjson,
)
from tests.helpers.tls_terminator import tls_terminator

pytestmark = pytest.mark.timeout(120)
DB, PREFIX = "streamer_db", "stage/"

# -- Timestream data model over bench.gen records ----------------------------------
TS_DIMENSIONS = {"host": "host", "service": "service", "region": "region",
                 "trace_id": "trace", "session": "session"}
TS_MEASURES = [(c, COLUMN_TYPES[c]) for c in BENCH_COLUMNS
               if c not in TS_DIMENSIONS and c != "time"]


def timestream_load(emulator_url: str, *, database: str, table: str,
                    extra: str = "") -> str:
    dims = ", ".join(f"{k} = {toml_value(v)}" for k, v in TS_DIMENSIONS.items())
    measures = ", ".join(
        f"{{ source = {toml_value(c)}, name = {toml_value(c + '_v')}, type = {toml_value(t)} }}"
        for c, t in TS_MEASURES)
    return f"""type = "timestream"
endpoint_url = {toml_value(emulator_url)}
database = {toml_value(database)}
table = {toml_value(table)}
time_column = "time"
time_unit = "SECONDS"
dimensions = {{ {dims} }}
measure_name = "request"
measures = [{measures}]
poll_initial_s = 0.2
poll_max_s = 1.0
{extra}"""


def _typed(value: Any, kind: str) -> Any:
    if kind == "DOUBLE":
        return float(value)
    if kind == "BIGINT":
        return int(value)
    return str(value)


def expected_timestream(records: list[dict[str, Any]]) -> list[tuple]:
    out = []
    for r in records:
        dims = sorted((dst, str(r[src])) for src, dst in TS_DIMENSIONS.items()
                      if r.get(src) is not None)
        measures = sorted((c + "_v", _typed(r[c], t)) for c, t in TS_MEASURES
                          if r.get(c) is not None)
        out.append((r["time"] * 10**9, dims, measures))
    return sorted(out)


def table_rows(rows: list[dict[str, Any]]) -> list[tuple]:
    out = []
    for row in rows:
        assert row["measure_name"] == "request"
        out.append((row["time_ns"], sorted(row["dimensions"].items()),
                    sorted(row["measures"].items())))
    return sorted(out)


def setup_table(emu: BatchLoadEmulator, table: str) -> None:
    emu.register_table(DB, table)


def config(tmp_path: Path, moto: MotoServer, emu: BatchLoadEmulator, bucket: str,
           source: Path, table: str, *, follow: bool = False, sink: str = "",
           load_extra: str = "") -> Path:
    return s3_stage_config(tmp_path, paths=[source], bucket=bucket, prefix=PREFIX,
                           s3_endpoint=moto.endpoint_url, follow=follow, sink=sink,
                           load=timestream_load(emu.endpoint_url, database=DB, table=table,
                                                extra=load_extra))


def window_tasks(emu: BatchLoadEmulator, window_id: str) -> list[dict[str, Any]]:
    prefix = f"{PREFIX}{window_id}/"
    return [t for t in emu.tasks() if t["DataSourceConfiguration"]
            ["DataSourceS3Configuration"]["ObjectKeyPrefix"] == prefix]


def test_100k_records_reach_the_table_exactly(tmp_path: Path, moto_s3: MotoServer,
                                              s3_bucket: str,
                                              batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    setup_table(emu, "requests")
    emu.configure(task_delay=0.05, stop_after_files=1)  # every task stops once: resumed
    records = list(iter_records(100_000, seed=7))
    assert len({(r["time"], *(r[c] for c in ("host", "service", "region", "trace_id",
                                              "session"))) for r in records}) == len(records)
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    cfg = config(tmp_path, moto_s3, emu, s3_bucket, source, "requests",
                 sink="max_file_records = 30000\nwindow_files = 2")

    done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env())

    assert done.code == 0, done.stderr[-3000:]
    s3 = moto_s3.s3()
    _, rows = read_rows(s3, s3_bucket, PREFIX)  # header, no BOM in every object
    assert len(rows) == len(records)
    assert table_rows(emu.rows(DB, "requests")) == expected_timestream(records)
    windows = journal(tmp_path / "data")
    assert [w["state"] for w in windows.values()] == ["loaded", "loaded"]
    tasks = emu.tasks()
    assert len(tasks) == 2 and {t["TaskStatus"] for t in tasks} == {"SUCCEEDED"}
    assert sorted(t["TaskId"] for t in tasks) == sorted(w["task_id"] for w in windows.values())
    assert sorted(emu.client_token_counts().values()) == [1, 1]
    calls = emu.calls()["timestream-write"]
    assert calls["ResumeBatchLoadTask"] == 2 and "DescribeEndpoints" not in calls
    for window_id in windows:  # each task loaded exactly its window's prefix
        (task,) = window_tasks(emu, window_id)
        assert all(f.startswith(f"{PREFIX}{window_id}/part-") for f in task["Files"])
    sinks = done.summary["sinks"]["st"]
    assert sinks["delivered"] == 100_000 and sinks["rows_loaded"] == 100_000
    assert sinks["load_records_ingested"] == 100_000 and sinks["load_jobs_succeeded"] == 2


def test_bad_rows_fail_the_task_and_the_daemon_goes_on(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    setup_table(emu, "requests")
    emu.configure(task_delay=0.05)
    good = list(iter_records(300, seed=3))
    bad = [dict(good[0], time="yesterday"), dict(good[1], latency_ms="fast"),
           dict(good[2], time=-5)]
    source = tmp_path / "in.ndjson"
    write_ndjson(source, good[3:150] + bad)
    cfg = config(tmp_path, moto_s3, emu, s3_bucket, source, "requests", follow=True,
                 sink="max_file_age_s = 0.3\nwindow_age_s = 0.6")
    daemon = Daemon(cfg, tmp_path / "daemon.log", env=moto_s3.aws_env())
    try:
        data = tmp_path / "data"
        wait_until(lambda: any(w["state"] == "failed" for w in journal(data).values()),
                   timeout=30, what="the window with bad rows to fail")
        (failed,) = [w for w in journal(data).values() if w["state"] == "failed"]
        (task,) = window_tasks(emu, failed["window"])
        assert task["TaskStatus"] == "FAILED"
        assert task["ProgressReport"]["ParseFailures"] == 3
        assert task["ProgressReport"]["RecordsIngested"] == 147
        report_key = task["ReportUri"].removeprefix(f"s3://{s3_bucket}/")
        assert report_key.startswith(f"{PREFIX}_reports/")
        assert report_key in list_keys(moto_s3.s3(), s3_bucket, f"{PREFIX}_reports/")
        report = json.loads(moto_s3.s3().get_object(Bucket=s3_bucket,
                                                    Key=report_key)["Body"].read())
        assert sum(len(r["lineRanges"]) for f in report["fileErrors"]
                   for r in f["errors"]) >= 1
        assert "FAILED" in failed["error"] and task["TaskId"] in failed["error"]

        write_ndjson(source, good[150:], mode="ab")  # the daemon is still working
        wait_until(lambda: any(w["state"] == "loaded" for w in journal(data).values()),
                   timeout=30, what="a later window to load")
        assert daemon.proc.poll() is None
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
    expected = expected_timestream(good[3:])
    assert table_rows(emu.rows(DB, "requests")) == expected
    sinks = summary_of(daemon.log)["sinks"]["st"]
    assert sinks["windows_failed"] == 1 and sinks["load_jobs_failed"] == 1
    assert sinks["load_parse_failures"] == 3
    assert "FAILED" in daemon.log and f"s3://{s3_bucket}/{PREFIX}_reports/" in daemon.log


def _loading_windows(data: Path) -> list[dict[str, Any]]:
    return [w for w in journal(data).values() if w["state"] == "loading"]


def test_kill_after_create_before_the_task_id_is_journaled(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    setup_table(emu, "requests")
    emu.configure(task_delay=0.05)
    # every create runs, and every answer is lost: the task exists, its id is unknown
    emu.set_faults("timestream-write", script=[{
        "operation": "CreateBatchLoadTask", "error": "InternalServerException",
        "count": 1000, "after": True}])
    records = list(iter_records(5000, seed=11))
    source = tmp_path / "in.ndjson"
    size = write_ndjson(source, records)
    cfg = config(tmp_path, moto_s3, emu, s3_bucket, source, "requests")
    data = tmp_path / "data"
    daemon = Daemon(cfg, tmp_path / "daemon.log", env=moto_s3.aws_env())
    try:
        wait_until(lambda: len(emu.tasks()) == 1 and _loading_windows(data)
                   and checkpoint_offset(data) == size, timeout=30,
                   what="the task to exist while its create keeps failing")
        (window,) = _loading_windows(data)
        assert "client_token" in window and "task_id" not in window
        daemon.kill()
    finally:
        daemon.stop()
    emu.clear_faults()
    first_calls = emu.client_token_counts()[window["client_token"]]

    done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env())

    assert done.code == 0, done.stderr[-3000:]
    (task,) = window_tasks(emu, window["window"])
    assert len(emu.tasks()) == 1 and task["TaskStatus"] == "SUCCEEDED"
    assert task["ClientToken"] == window["client_token"]
    assert emu.client_token_counts()[window["client_token"]] == first_calls + 1
    after = journal(data)[window["window"]]
    assert after["state"] == "loaded" and after["task_id"] == task["TaskId"]
    assert table_rows(emu.rows(DB, "requests")) == expected_timestream(records)
    assert "resuming window" in done.stderr


def test_restart_resumes_polling_a_journaled_task(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    setup_table(emu, "requests")
    emu.configure(task_delay=2.0)
    records = list(iter_records(3000, seed=5))
    source = tmp_path / "in.ndjson"
    size = write_ndjson(source, records)
    cfg = config(tmp_path, moto_s3, emu, s3_bucket, source, "requests")
    data = tmp_path / "data"
    daemon = Daemon(cfg, tmp_path / "daemon.log", env=moto_s3.aws_env())
    try:
        wait_until(lambda: any("task_id" in w for w in _loading_windows(data))
                   and checkpoint_offset(data) == size, timeout=30,
                   what="the task id in the journal")
        daemon.kill()
    finally:
        daemon.stop()
    assert emu.tasks()[0]["TaskStatus"] in ("CREATED", "IN_PROGRESS")
    emu.configure(task_delay=0.05)

    done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env())

    assert done.code == 0, done.stderr[-3000:]
    assert emu.calls()["timestream-write"]["CreateBatchLoadTask"] == 1
    (task,) = emu.tasks()
    assert task["TaskStatus"] == "SUCCEEDED"
    assert [w["state"] for w in journal(data).values()] == ["loaded"]
    assert table_rows(emu.rows(DB, "requests")) == expected_timestream(records)


def test_check_refuses_unknown_mapping_columns_and_gzip(tmp_path: Path) -> None:
    load = """type = "timestream"
database = "db1"
table = "tb1"
time_column = "time"
dimensions = { host = "host", zone = "zone" }
measure_name = "m"
measures = [{ source = "latency_ms", type = "DOUBLE" }, { source = "nope", type = "BIGINT" }]
"""
    cfg = s3_stage_config(tmp_path, paths=[tmp_path / "in.ndjson"], bucket="some-bucket",
                          s3_endpoint="http://127.0.0.1:9", sink='compression = "gzip"',
                          load=load)
    done = run_cli("check", "-c", str(cfg))
    assert done.code == 2
    assert "timestream mapping names columns not in columns: zone, nope" in done.stderr
    assert 'a timestream load needs plain CSV files (compression = "none")' in done.stderr


def test_check_describes_the_load_without_secrets(tmp_path: Path) -> None:
    cfg = s3_stage_config(
        tmp_path, paths=[tmp_path / "in.ndjson"], bucket="some-bucket",
        s3_endpoint="http://127.0.0.1:9",
        s3='access_key_id = "AKIDSECRETVALUE1"\nsecret_access_key = "sEcReT/VaLuE2"',
        load=timestream_load("http://127.0.0.1:8", database="db1", table="tb1"))
    done = run_cli("check", "-c", str(cfg))
    assert done.code == 0, done.stderr
    out = done.stdout
    assert "url: s3://some-bucket/stage/" in out
    assert "load: timestream db1.tb1" in out and "endpoint_url=http://127.0.0.1:8" in out
    assert "credentials=static" in out
    assert "AKIDSECRETVALUE1" not in out and "sEcReT" not in out


@pytest.mark.parametrize("missing", ["table", "database"])
def test_a_table_that_does_not_exist_fails_the_window(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator, missing: str) -> None:
    """CreateBatchLoadTask into a table or database that does not exist (404
    ResourceNotFound): the window fails with the cause and a one-shot run ends (before
    2026-12-04 it was retried for ever: the run never ended, the window `loading`)."""
    emu = batchload_emulator
    setup_table(emu, "present")
    source = tmp_path / "in.ndjson"
    write_ndjson(source, list(iter_records(200, seed=4)))
    cfg = s3_stage_config(tmp_path, paths=[source], bucket=s3_bucket, prefix=PREFIX,
                          s3_endpoint=moto_s3.endpoint_url,
                          load=timestream_load(emu.endpoint_url,
                                               database=DB if missing == "table" else "nodb",
                                               table="absent"))

    done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env(), timeout=60)

    assert done.code == 1, done.stderr[-3000:]
    (window,) = journal(tmp_path / "data").values()
    assert window["state"] == "failed" and "does not exist" in window["error"]
    sink = done.summary["sinks"]["st"]
    assert "does not exist" in sink["failed_windows"][window["window"]]
    assert emu.tasks() == []


def test_an_unreachable_timestream_api_ends_a_one_shot_run_and_the_next_run_loads(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    """Timestream's API not answering (a closed port) is retried; a one-shot run gives
    up after `oneshot_give_up_s` (before 2026-12-05 it retried until killed) with the
    window left closed in the journal, and the next run loads it, once."""
    emu = batchload_emulator
    setup_table(emu, "requests")
    records = list(iter_records(300, seed=5))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def cfg(endpoint: str, name: str) -> Path:
        path = s3_stage_config(tmp_path, paths=[source], bucket=s3_bucket, prefix=PREFIX,
                               s3_endpoint=moto_s3.endpoint_url, name=name,
                               load=timestream_load(endpoint, database=DB, table="requests"))
        path.write_text("oneshot_give_up_s = 3\n" + path.read_text())
        return path

    down = run_cli("run", "-c", str(cfg(closed, "down.toml")), env=moto_s3.aws_env(),
                   timeout=60)
    assert down.code == 1, down.stderr[-3000:]
    errors = [line for line in down.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, down.stderr[-3000:]
    assert f"sink st (s3://{s3_bucket}/{PREFIX}): no success for " in errors[0], errors
    assert "load: " in errors[0] and "1 closed load window(s) not loaded" in errors[0], errors
    (window,) = journal(tmp_path / "data").values()
    assert window["state"] != "failed" and emu.tasks() == []

    up = run_cli("run", "-c", str(cfg(emu.endpoint_url, "up.toml")), env=moto_s3.aws_env(),
                 timeout=60)
    assert up.code == 0, up.stderr[-3000:]
    assert table_rows(emu.rows(DB, "requests")) == expected_timestream(records)
    assert [w["state"] for w in journal(tmp_path / "data").values()] == ["loaded"]
    assert len(emu.tasks()) == 1


def test_a_timestream_certificate_that_does_not_verify_ends_a_one_shot_run_at_once(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    """The emulator behind a TLS terminator with a self-signed certificate: no retry
    mends it, so the one-shot run stops at the first load (before 2026-12-05 it waited
    `oneshot_give_up_s`), the window stays closed in the journal, not failed."""
    emu = batchload_emulator
    setup_table(emu, "requests")
    source = tmp_path / "in.ndjson"
    write_ndjson(source, iter_records(50, seed=16))
    env = moto_s3.aws_env()
    with tls_terminator(tmp_path, int(emu.endpoint_url.rsplit(":", 1)[1])) as (port, _):
        endpoint = f"https://localhost:{port}"
        cfg = s3_stage_config(tmp_path, paths=[source], bucket=s3_bucket, prefix=PREFIX,
                              s3_endpoint=moto_s3.endpoint_url,
                              load=timestream_load(endpoint, database=DB, table="requests"))
        cfg.write_text("oneshot_give_up_s = 600\n" + cfg.read_text())
        done = run_cli("run", "-c", str(cfg), env=env, timeout=60)
    assert done.code == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, done.stderr[-3000:]
    assert f"sink st (s3://{s3_bucket}/{PREFIX}): a failure no retry mends" in errors[0]
    assert "certificate verify failed" in errors[0] and f"{endpoint}/" in errors[0], errors
    assert "1 closed load window(s) not loaded" in errors[0], errors
    assert env["AWS_SECRET_ACCESS_KEY"] not in done.stderr
    assert done.summary["elapsed_s"] < 60, done.summary
    (window,) = journal(tmp_path / "data").values()
    assert window["state"] != "failed" and emu.tasks() == []


def test_a_task_that_never_ends_fails_the_window_at_max_wait_and_retry_resumes_it(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    """A task held IN_PROGRESS: polling succeeds, so nothing failed and a one-shot run
    waited for ever (before 2026-12-05). Now the window fails at `max_wait_s` (one ERROR
    line naming the task and its last state, exit 1); `loads retry` then follows the
    same task, which has finished meanwhile: loaded once, no second task."""
    emu = batchload_emulator
    setup_table(emu, "requests")
    emu.configure(hold_tasks=True)
    records = list(iter_records(300, seed=8))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    cfg = config(tmp_path, moto_s3, emu, s3_bucket, source, "requests",
                 load_extra="max_wait_s = 2")

    held = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env(), timeout=60)

    assert held.code == 1, held.stderr[-3000:]
    (window,) = journal(tmp_path / "data").values()
    (task,) = emu.tasks()
    assert task["TaskStatus"] == "IN_PROGRESS"
    assert window["state"] == "failed" and window["task_id"] == task["TaskId"]
    errors = [line for line in held.stderr.splitlines() if " ERROR " in line
              and "max_wait_s" in line]
    assert len(errors) == 1, held.stderr[-3000:]
    for part in ("sink st", window["window"], task["TaskId"], "IN_PROGRESS",
                 "max_wait_s = 2"):
        assert part in errors[0], errors
    assert held.summary["sinks"]["st"]["load_jobs_timed_out"] == 1
    assert emu.rows(DB, "requests") == []

    emu.configure(hold_tasks=False)
    wait_until(lambda: emu.tasks()[0]["TaskStatus"] == "SUCCEEDED", timeout=30)
    retried = run_cli("loads", "retry", "-c", str(cfg))
    assert retried.code == 0, retried.stderr
    again = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env(), timeout=60)

    assert again.code == 0, again.stderr[-3000:]
    assert table_rows(emu.rows(DB, "requests")) == expected_timestream(records)
    assert [w["state"] for w in journal(tmp_path / "data").values()] == ["loaded"]
    assert [t["TaskId"] for t in emu.tasks()] == [task["TaskId"]]


def test_a_portal_answering_timestream_is_retried_and_named(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    """A captive portal's `200 text/html` to CreateBatchLoadTask and the first describe
    parse as empty answers: retried, the WARNING says what was wrong (before 2026-12-05:
    `failed ('TaskId')`), and the window loads once."""
    from urllib.parse import urlparse

    from tests.helpers.fault_proxy import FaultProxy

    emu = batchload_emulator
    setup_table(emu, "requests")
    records = list(iter_records(200, seed=9))
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    with FaultProxy(int(urlparse(emu.endpoint_url).port or 0), "portal", limit=2) as proxy:
        cfg = s3_stage_config(tmp_path, paths=[source], bucket=s3_bucket, prefix=PREFIX,
                              s3_endpoint=moto_s3.endpoint_url,
                              load=timestream_load(proxy.url, database=DB, table="requests"))
        done = run_cli("run", "-c", str(cfg), env=moto_s3.aws_env(), timeout=60)
    assert done.code == 0, done.stderr[-3000:]
    assert proxy.faulted == 2
    assert "the answer to CreateBatchLoadTask had no TaskId: not Timestream's answer?" \
        in done.stderr, done.stderr[-3000:]
    assert table_rows(emu.rows(DB, "requests")) == expected_timestream(records)
    assert len(emu.tasks()) == 1
