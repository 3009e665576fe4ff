"""sd_notify through a real unix datagram socket, as systemd provides it."""

from __future__ import annotations

import contextlib
import signal
import socket
import time

import psutil

from tests.helpers import Daemon, wait_until, write_config


def test_ready_status_watchdog_and_stopping(tmp_path):
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(0.2)
    (tmp_path / "in.ndjson").write_bytes(b'{"time":1}\n{"time":2}\n')
    config = write_config(tmp_path, f"""
data_dir = "{tmp_path}/data"
[api]
listen = ""
[sources.input]
type = "file"
paths = ["{tmp_path}/in.ndjson"]
[sinks.stage]
type = "stage"
url = "file://{tmp_path}/stage/"
columns = ["time"]
max_file_age_s = 0.2
""")
    daemon = Daemon(config, tmp_path / "run.log",
                    env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
    messages: list[str] = []

    def receive() -> None:
        with contextlib.suppress(TimeoutError):
            messages.append(listener.recv(4096).decode())

    try:
        wait_until(lambda: receive() or any("READY=1" in m for m in messages),
                   what="READY=1")
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=read " in ready
        # pings every WATCHDOG_USEC / 2 from the event loop
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            receive()
        assert sum("WATCHDOG=1" in m for m in messages) >= 3
        daemon.signal(signal.SIGTERM)
        wait_until(lambda: receive() or any("STOPPING=1" in m for m in messages),
                   what="STOPPING=1")
        assert any("STATUS=draining" in m for m in messages if "STOPPING=1" in m)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
        listener.close()


def test_supervisor_is_ready_when_every_worker_is_up_with_the_api_off(tmp_path):
    """With no API to merge, workers open no port; the files they write when up
    still tell the supervisor when to say READY."""
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(0.2)
    for index in range(2):
        (tmp_path / f"in-{index}.ndjson").write_bytes(b'{"time":%d}\n' % index)
    config = write_config(tmp_path, f"""
data_dir = "{tmp_path}/data"
workers = 2
[api]
listen = ""
[sources.input]
type = "file"
paths = ["{tmp_path}/in-*.ndjson"]
[sinks.stage]
type = "stage"
url = "file://{tmp_path}/stage/"
columns = ["time"]
max_file_age_s = 0.2
""")
    daemon = Daemon(config, tmp_path / "run.log", env={"NOTIFY_SOCKET": address})
    messages: list[str] = []

    def receive() -> None:
        with contextlib.suppress(TimeoutError):
            messages.append(listener.recv(4096).decode())

    try:
        wait_until(lambda: receive() or any("READY=1" in m for m in messages),
                   what="READY=1")
        workers = psutil.Process(daemon.proc.pid).children()
        assert len(workers) == 2
        assert [c for w in workers for c in w.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN] == []
        wait_until(lambda: receive() or any("2 of 2 workers running" in m for m in messages),
                   what="the supervisor's status")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
        listener.close()
