"""sd_notify through a real unix datagram socket, as systemd provides it."""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from pathlib import Path

import psutil

from tests.helpers import (
    Daemon,
    base_config,
    file_source,
    stage_sink,
    wait_until,
    write_config,
)


class Notifications:
    """The socket systemd would listen on, and what arrived on it."""

    def __init__(self, tmp_path: Path) -> None:
        self.address = str(tmp_path / "notify.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._listener.bind(self.address)
        self._listener.settimeout(0.2)
        self.messages: list[str] = []

    def receive(self) -> None:
        with contextlib.suppress(TimeoutError):
            self.messages.append(self._listener.recv(4096).decode())

    def wait_for(self, text: str) -> str:
        wait_until(lambda: self.receive() or any(text in m for m in self.messages), what=text)
        return next(m for m in self.messages if text in m)

    def close(self) -> None:
        self._listener.close()


def _config(tmp_path: Path, paths: str, workers: int = 1) -> Path:
    return write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None,
                                              workers=workers)
                        + file_source(paths, name="input", follow=None, poll_interval_ms=None)
                        + stage_sink(tmp_path, columns=["time"], max_file_age_s=0.2,
                                     fsync=None))


def test_ready_status_watchdog_and_stopping(tmp_path):
    notifications = Notifications(tmp_path)
    (tmp_path / "in.ndjson").write_bytes(b'{"time":1}\n{"time":2}\n')
    daemon = Daemon(_config(tmp_path, f"{tmp_path}/in.ndjson"), tmp_path / "run.log",
                    env={"NOTIFY_SOCKET": notifications.address, "WATCHDOG_USEC": "200000"})
    try:
        assert "STATUS=read " in notifications.wait_for("READY=1")
        # pings every WATCHDOG_USEC / 2 from the event loop
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            notifications.receive()
        assert sum("WATCHDOG=1" in m for m in notifications.messages) >= 3
        daemon.signal(signal.SIGTERM)
        notifications.wait_for("STOPPING=1")
        assert any("STATUS=draining" in m for m in notifications.messages
                   if "STOPPING=1" in m)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
        notifications.close()


def test_supervisor_is_ready_when_every_worker_is_up_with_the_api_off(tmp_path):
    """With no API to merge, workers open no port; the files they write when up
    still tell the supervisor when to say READY."""
    notifications = Notifications(tmp_path)
    for index in range(2):
        (tmp_path / f"in-{index}.ndjson").write_bytes(b'{"time":%d}\n' % index)
    daemon = Daemon(_config(tmp_path, f"{tmp_path}/in-*.ndjson", workers=2),
                    tmp_path / "run.log", env={"NOTIFY_SOCKET": notifications.address})
    try:
        notifications.wait_for("READY=1")
        workers = psutil.Process(daemon.proc.pid).children()
        assert len(workers) == 2
        assert [c for w in workers for c in w.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN] == []
        notifications.wait_for("2 of 2 workers running")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
        notifications.close()
