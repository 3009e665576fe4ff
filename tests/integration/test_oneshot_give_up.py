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

from tests.fixtures.td import TDEmulator
from tests.helpers import (
    base_config,
    file_source,
    make_records,
    multiset,
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
from tests.helpers.sockets import self_signed

GIVE_UP_S = 2


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


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
    assert result.code == 1, result.stderr[-3000:]
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-3000:]
    assert "sink td (http://no-such-host.invalid:8080)" in errors[0], errors
    assert "Name or service not known" in errors[0], errors
    assert f"oneshot_give_up_s = {GIVE_UP_S}" in errors[0], errors
    assert "delivered 0 of 40 record(s)" in errors[0], errors
    assert td_emulator.key not in result.stderr
    assert result.summary["sinks"]["td"]["in_flight"] == 40

    # the next run (the host mended) sends every record, once
    mended = write_config(tmp_path, top + source + td_sink(td_emulator.url, api="ingest"),
                          "mended.toml")
    again = run_cli("run", "-c", str(mended), env=env, timeout=60)
    assert again.code == 0, again.stderr[-3000:]
    assert multiset(stored(td_emulator)) == multiset(records)


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
    assert result.code == 1, result.stderr[-3000:]
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-3000:]
    assert f"sink td (https://localhost:{port}): a failure no retry mends" in errors[0]
    assert "certificate verify failed" in errors[0], errors
    assert "delivered 0 of 20 record(s)" in errors[0], errors
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
    assert result.code == 1, result.stderr[-3000:]
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-3000:]
    assert "sink st (s3://stage/stage/)" in errors[0], errors
    assert "delivered 0 of 20 record(s)" in errors[0], errors
    assert "secret-example" not in result.stderr


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
        assert result.code == 1, result.stderr[-3000:]
        errors = _error_lines(result.stderr)
        assert len(errors) == 1, result.stderr[-3000:]
        assert f"sink stage (file://{stage}/)" in errors[0], errors
        assert "No space left on device" in errors[0], errors
        sink = result.summary["sinks"]["stage"]
        assert sink["in_flight"] > 0, sink
        assert f"delivered {sink['delivered']} of {sink['received']} record(s)" in errors[0]

        # room again: the next run stages what the first did not, and nothing twice
        subprocess.run(["mount", "-o", "remount,size=32m", str(stage)], check=True)
        again = run_cli("run", "-c", str(cfg), timeout=60)
        assert again.code == 0, again.stderr[-3000:]
        assert stage_ids(stage) == Counter(r["id"] for r in records)
        assert not list(stage.glob("_tmp/*/*")), "a partial stage file was left behind"
        assert again.summary["sinks"]["stage"]["in_flight"] == 0
