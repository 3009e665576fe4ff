"""sd_notify: READY, STATUS, WATCHDOG and STOPPING to systemd (Type=notify).

Silent without NOTIFY_SOCKET.  The watchdog ping is sent from a task on the
event loop, so a blocked loop stops pinging and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Mapping


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self._address = address
        self._sock: socket.socket | None = None
        if address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        for_us = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 2e6 if usec.isdigit() and for_us and address else None

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *fields: str) -> None:
        if self._sock is None:
            return
        with contextlib.suppress(OSError):  # systemd gone: nothing to tell
            self._sock.sendto("\n".join(fields).encode(), self._address)

    async def run(self, status: Callable[[], str], status_interval_s: float = 5.0) -> None:
        """STATUS lines with live counts and, when asked for, WATCHDOG pings."""
        if self._sock is None:
            return
        interval = min(self.watchdog_s or status_interval_s, status_interval_s)
        since_status = status_interval_s
        while True:
            fields = ["WATCHDOG=1"] if self.watchdog_s else []
            if since_status >= status_interval_s:
                fields.append(f"STATUS={status()}")
                since_status = 0.0
            self.notify(*fields)
            await asyncio.sleep(interval)
            since_status += interval

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
