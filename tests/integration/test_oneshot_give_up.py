"""A one-shot run whose destination cannot be reached ends (`oneshot_give_up_s`).

A daemon retries a destination for ever (an outage ends); a one-shot load run from a
script or cron must end: once a sink has failed without a single success for
`oneshot_give_up_s`, the run stops with one ERROR line naming the sink, where it writes,
the cause and what was and was not delivered, and exits 1. Nothing it did not deliver
is checkpointed: the next run sends it, once. Before 2026-12-05 each of these runs
retried until it was killed: a TD host that does not resolve, an S3 endpoint that does
not answer, a local stage directory that filled up (ENOSPC, on a real 1 MiB tmpfs)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench.gen import iter_records
from tests.fixtures.moto_s3 import MotoServer
from tests.fixtures.td import TDEmulator
from tests.helpers import (
    BENCH_COLUMNS,
    assert_same_rows,
    base_config,
    expected_rows,
    file_source,
    make_records,
    multiset,
    read_rows,
    run_cli,
    s3_stage_config,
    stage_ids,
    stage_sink,
    stored,
    td_sink,
    write_config,
    write_ndjson,
)
from tests.helpers.filesystems import small_filesystem
from tests.helpers.process import Finished
from tests.helpers.sockets import self_signed
from tests.helpers.tls_terminator import tls_terminator

GIVE_UP_S = 2


def _the_error_line(result: Finished) -> str:
    """A run given up: exit 1 and one ERROR line, returned."""
    assert result.code == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_td_host_that_does_not_resolve_ends_the_run_and_the_next_run_sends_it_all(
        tmp_path: Path, td_emulator: TDEmulator) -> None:
    records = make_records(40)
    write_ndjson(tmp_path / "in.ndjson", records)
    top = base_config(tmp_path, oneshot_give_up_s=GIVE_UP_S)
    source = file_source(tmp_path / "in.ndjson", follow=False)
    env = {"TD_WRITE_KEY": td_emulator.key}
    unresolved = write_config(tmp_path, top + source + td_sink(
        "http://no-such-host.invalid:8080", api="ingest"), "unresolved.toml")
    result = run_cli("run", "-c", str(unresolved), env=env, timeout=60)
    error = _the_error_line(result)
    assert "sink td (http://no-such-host.invalid:8080)" in error, error
    assert "Name or service not known" in error, error
    assert f"oneshot_give_up_s = {GIVE_UP_S}" in error, error
    assert "delivered 0 of 40 record(s)" in error, error
    assert td_emulator.key not in result.stderr
    assert result.summary["sinks"]["td"]["in_flight"] == 40

    # the next run (the host mended) sends every record, once
    mended = write_config(tmp_path, top + source + td_sink(td_emulator.url, api="ingest"),
                          "mended.toml")
    again = run_cli("run", "-c", str(mended), env=env, timeout=60)
    assert again.code == 0, again.stderr[-3000:]
    assert multiset(stored(td_emulator)) == multiset(records)


def test_with_two_workers_a_give_up_is_one_error_line(tmp_path: Path) -> None:
    """The worker's line says why; the supervisor's exit note refers to it without a
    second ERROR (before 2026-12-05 both were ERROR lines)."""
    write_ndjson(tmp_path / "in.ndjson", make_records(25))  # one file: one worker's share
    cfg = write_config(tmp_path, "workers = 2\n"
                       + base_config(tmp_path, oneshot_give_up_s=GIVE_UP_S)
                       + file_source(tmp_path / "in.ndjson", follow=False)
                       + td_sink("http://no-such-host.invalid:8080", api="ingest"))
    result = run_cli("run", "-c", str(cfg), env={"TD_WRITE_KEY": "td-key-not-shown"},
                     timeout=60)
    error = _the_error_line(result)
    assert "sink td (http://no-such-host.invalid:8080)" in error, error
    assert "Name or service not known" in error, error
    assert "delivered 0 of 25 record(s)" in error, error
    (note,) = [line for line in result.stderr.splitlines() if "streamer.supervisor" in line
               and "stopped with code 1" in line]
    assert " WARNING " in note and "(it logged why, above)" in note, note
    assert sorted(w["exit_code"] for w in result.summary["workers"].values()) == [0, 1]
    assert result.summary["sinks"]["td"]["in_flight"] == 25
    assert "td-key-not-shown" not in result.stderr


@contextlib.contextmanager
def tls_server(tmp_path: Path) -> Iterator[int]:
    """A loopback TLS server with a self-signed certificate (handshakes only)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    self_signed(cert, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with contextlib.suppress(OSError), conn:
                context.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        server.close()
        thread.join(5)


def test_a_td_certificate_that_does_not_verify_ends_the_run_at_once(tmp_path: Path) -> None:
    """No retry mends a certificate that does not verify: the run stops on the first
    one, long before `oneshot_give_up_s` (a daemon retries it, degraded)."""
    write_ndjson(tmp_path / "in.ndjson", make_records(20))
    with tls_server(tmp_path) as port:
        cfg = write_config(tmp_path, base_config(tmp_path, oneshot_give_up_s=600)
                           + file_source(tmp_path / "in.ndjson", follow=False)
                           + td_sink(f"https://localhost:{port}", api="ingest"))
        result = run_cli("run", "-c", str(cfg), env={"TD_WRITE_KEY": "td-key-not-shown"},
                         timeout=60)
    error = _the_error_line(result)
    assert f"sink td (https://localhost:{port}): a failure no retry mends" in error
    assert "certificate verify failed" in error, error
    assert "delivered 0 of 20 record(s)" in error, error
    assert result.summary["elapsed_s"] < 60 and result.summary["sinks"]["td"]["in_flight"] == 20
    assert "td-key-not-shown" not in result.stderr


def test_an_s3_endpoint_that_does_not_answer_ends_the_run(tmp_path: Path) -> None:
    write_ndjson(tmp_path / "in.ndjson", make_records(20))
    cfg = s3_stage_config(tmp_path, paths=[tmp_path / "in.ndjson"], bucket="stage",
                          s3_endpoint=f"http://127.0.0.1:{_closed_port()}",
                          s3="connect_timeout_s = 1\nread_timeout_s = 1")
    cfg.write_text(f"oneshot_give_up_s = {GIVE_UP_S}\n" + cfg.read_text())
    result = run_cli("run", "-c", str(cfg), env={"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
                                                 "AWS_SECRET_ACCESS_KEY": "secret-example"},
                     timeout=90)
    error = _the_error_line(result)
    assert "sink st (s3://stage/stage/)" in error, error
    assert "delivered 0 of 20 record(s)" in error, error
    assert "secret-example" not in result.stderr


def test_an_s3_certificate_that_does_not_verify_ends_the_run_at_once_and_the_next_sends_it(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str) -> None:
    """moto behind a TLS terminator with a self-signed certificate: the one-shot run
    stops on the first upload (before 2026-12-05 only TD's certificate did; S3 retried
    for `oneshot_give_up_s`); with the certificate trusted (AWS_CA_BUNDLE) the next run
    stages every record, once."""
    records = list(iter_records(30, seed=16))
    write_ndjson(tmp_path / "in.ndjson", records)
    env = moto_s3.aws_env()
    with tls_terminator(tmp_path, moto_s3.port) as (port, cert):
        cfg = s3_stage_config(tmp_path, paths=[tmp_path / "in.ndjson"], bucket=s3_bucket,
                              s3_endpoint=f"https://localhost:{port}")
        cfg.write_text("oneshot_give_up_s = 600\n" + cfg.read_text())
        result = run_cli("run", "-c", str(cfg), env=env, timeout=60)
        error = _the_error_line(result)
        assert f"sink st (s3://{s3_bucket}/stage/): a failure no retry mends" in error
        assert "certificate verify failed" in error, error
        assert f"https://localhost:{port}/" in error, error  # the endpoint
        assert "delivered 0 of 30 record(s)" in error, error
        assert result.summary["sinks"]["st"]["in_flight"] == 30
        assert result.summary["elapsed_s"] < 60, result.summary
        assert env["AWS_SECRET_ACCESS_KEY"] not in result.stderr
        assert env["AWS_ACCESS_KEY_ID"] not in result.stderr

        trusted = run_cli("run", "-c", str(cfg), env={**env, "AWS_CA_BUNDLE": str(cert)},
                          timeout=60)
    assert trusted.code == 0, trusted.stderr[-3000:]
    _, rows = read_rows(moto_s3.s3(), s3_bucket, "stage/")
    assert_same_rows(sorted(rows), sorted(expected_rows(records, BENCH_COLUMNS)))


def test_a_stage_directory_that_fills_ends_the_run_and_the_next_run_stages_the_rest_once(
        tmp_path: Path) -> None:
    records = make_records(12_000)  # ~4 MB of CSV: more than the 1 MiB filesystem holds
    write_ndjson(tmp_path / "in.ndjson", records)
    with small_filesystem(tmp_path / "stage", "1m") as stage:
        cfg = write_config(tmp_path, base_config(tmp_path, oneshot_give_up_s=GIVE_UP_S)
                           + file_source(tmp_path / "in.ndjson", follow=False)
                           + stage_sink(tmp_path, name="stage", max_file_age_s=None,
                                        extra="[sinks.stage.batch]\nmax_records = 500\n"))
        result = run_cli("run", "-c", str(cfg), timeout=60)
        error = _the_error_line(result)
        assert f"sink stage (file://{stage}/)" in error, error
        assert "No space left on device" in error, error
        sink = result.summary["sinks"]["stage"]
        assert sink["in_flight"] > 0, sink
        assert f"delivered {sink['delivered']} of {sink['received']} record(s)" in error

        # room again: the next run stages what the first did not, and nothing twice
        subprocess.run(["mount", "-o", "remount,size=32m", str(stage)], check=True)
        again = run_cli("run", "-c", str(cfg), timeout=60)
        assert again.code == 0, again.stderr[-3000:]
        assert stage_ids(stage) == Counter(r["id"] for r in records)
        assert not list(stage.glob("_tmp/*/*")), "a partial stage file was left behind"
        assert again.summary["sinks"]["stage"]["in_flight"] == 0
