"""A socket source's listen address: two sources on one address are a config error, and
an address another process holds is one line naming the source's `listen`, the summary,
exit 2, before any source reads (as for `api.listen`), not a traceback once the other
sources have started."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.helpers import (
    base_config,
    file_source,
    make_records,
    run_cli,
    socket_source,
    stage_sink,
    write_config,
    write_ndjson,
)


def test_two_socket_sources_on_one_address_are_a_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, base_config(tmp_path)
                          + socket_source("a", "newline", port=19999)
                          + socket_source("b", "length_prefixed", port=19999)
                          + socket_source("c", "newline")  # port 0: any free port, no clash
                          + socket_source("d", "newline")
                          + stage_sink(tmp_path))
    for command in ("check", "run"):
        result = run_cli(command, "-c", str(config), timeout=60)
        assert result.code == 2, (command, result.stderr[-3000:])
        assert result.stderr.strip().splitlines() == [
            "sources.b.listen: 127.0.0.1:19999 is also the listen address of source a"]


def test_a_taken_port_is_one_line_naming_the_source_and_exit_2(tmp_path: Path) -> None:
    write_ndjson(tmp_path / "in.ndjson", make_records(50))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, base_config(tmp_path)
                              + file_source(tmp_path / "in.ndjson")
                              + socket_source("net", "newline", port=port)
                              + stage_sink(tmp_path))
        result = run_cli("run", "-c", str(config), timeout=60)
    assert result.code == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and errors[0].endswith(
        f"sources.net.listen: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "nothing was read"), result.stderr[-3000:]
    assert result.summary["exit_code"] == 2
    assert result.summary["sources"]["events"]["records"] == 0
    assert not (tmp_path / "data" / "checkpoints").exists()


def test_a_socket_source_on_the_api_address_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, base_config(tmp_path, api="127.0.0.1:19998")
                          + socket_source("net", "newline", port=19998)
                          + stage_sink(tmp_path))
    result = run_cli("check", "-c", str(config), timeout=60)
    assert result.code == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [
        "sources.net.listen: 127.0.0.1:19998 is also the listen address of api.listen"]


def test_port_0_with_workers_is_a_config_error(tmp_path: Path) -> None:
    """Workers share one port (SO_REUSEPORT); port 0 would give each its own, and a
    producer one of them (before 2026-12-05 it was taken, each worker on its own port)."""
    config = write_config(tmp_path, "workers = 2\n" + base_config(tmp_path)
                          + socket_source("net", "newline")
                          + socket_source("fixed", "newline", port=19997)
                          + stage_sink(tmp_path))
    for command in ("check", "run"):
        result = run_cli(command, "-c", str(config), timeout=60)
        assert result.code == 2, (command, result.stderr[-3000:])
        assert result.stderr.strip().splitlines() == [
            "sources.net.listen: 127.0.0.1:0 with workers = 2: each worker would listen on "
            "a free port of its own; give a port number (the workers share it)"]
