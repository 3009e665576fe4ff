"""The API's port and one-shot runs: a finite run serves no API unless `[api] listen`
is set (two one-shot loads at once do not fight over the default port), and a port
that is taken is one error line naming `api.listen`, the summary, exit 2."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.helpers import (
    assert_stage_equals,
    file_source,
    make_records,
    run_cli,
    stage_sink,
    toml_keys,
    write_config,
    write_ndjson,
)


def one_shot(tmp_path: Path, api: str | None) -> Path:
    """A file read once into a stage; `api` None leaves the [api] table out."""
    records = make_records(300)
    write_ndjson(tmp_path / "in.ndjson", records)
    api_table = "" if api is None else "[api]\n" + toml_keys(listen=api)
    return write_config(tmp_path, toml_keys(data_dir=f"{tmp_path}/data") + api_table
                        + file_source(tmp_path / "in.ndjson", follow=False)
                        + stage_sink(tmp_path))


def test_a_finite_run_serves_no_api_unless_listen_is_set(tmp_path: Path) -> None:
    config = one_shot(tmp_path, None)
    check = run_cli("check", "-c", str(config))
    assert "api: disabled (a finite run: on only where [api] listen is set)" in \
        check.stdout.splitlines()
    result = run_cli("run", "-c", str(config))
    assert result.code == 0, result.stderr[-3000:]
    assert "metrics and health on" not in result.stderr
    assert result.summary["sinks"]["stage"]["delivered"] == 300
    assert_stage_equals(tmp_path / "stage", make_records(300))


def test_a_taken_port_is_one_line_naming_api_listen_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config = one_shot(tmp_path, address)
        result = run_cli("run", "-c", str(config), timeout=60)
    assert result.code == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1 and errors[0].endswith(
        f"api.listen: cannot listen on {address}: Address already in use; nothing was read "
        '(choose a free port, or listen = "" to turn the API off)'), lines
    assert result.summary["exit_code"] == 2
    assert result.summary["sinks"]["stage"]["delivered"] == 0


def test_a_taken_port_with_workers_is_one_line_and_exit_2_before_any_worker(
        tmp_path: Path) -> None:
    """The supervisor binds the API's socket before it forks: nothing starts."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config = one_shot(tmp_path, address)
        config.write_text("workers = 2\n" + config.read_text())
        result = run_cli("run", "-c", str(config), timeout=60)
    assert result.code == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"api.listen: cannot listen on {address}: Address already in use; no worker was "
        'started (choose a free port, or listen = "" to turn the API off)']
    assert not (tmp_path / "stage").exists() or not any((tmp_path / "stage").rglob("*.csv"))
