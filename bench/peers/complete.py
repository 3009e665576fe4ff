"""Probes that say when a peer's output is complete (``Scenario.complete``).

Fluent Bit does not exit when its output is done (with ``Exit_On_Eof`` it exits on a
one-second timer, with several inputs not at all), so its rows are measured to the
moment the output holds every record: the harness polls one of these every 10 ms
and stops the process then.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["LineCounter", "ReceiverRecords"]


class LineCounter:
    """True once every file holds at least its expected number of lines.

    Reads only what was appended since the last call (a file that does not exist
    yet counts 0), so polling a file that grows to hundreds of MB costs one read of
    it in all.
    """

    def __init__(self, paths: Sequence[Path], expected: Sequence[int]) -> None:
        if len(paths) != len(expected):
            raise ValueError("one expected line count per file")
        self.paths = list(paths)
        self.expected = list(expected)
        self.lines = [0] * len(self.paths)
        self._offsets = [0] * len(self.paths)

    def __call__(self) -> bool:
        done = True
        for index, path in enumerate(self.paths):
            if self.lines[index] < self.expected[index]:
                self._read_new(index, path)
                done = done and self.lines[index] >= self.expected[index]
        return done

    def _read_new(self, index: int, path: Path) -> None:
        try:
            with open(path, "rb", buffering=0) as fh:
                fh.seek(self._offsets[index])
                while chunk := fh.read(4 << 20):
                    self.lines[index] += chunk.count(b"\n")
                    self._offsets[index] += len(chunk)
        except FileNotFoundError:
            pass


class ReceiverRecords:
    """True once the bench receiver (bench/td_receiver.py, ``GET /stats``) has served
    at least ``expected`` records of JSON-lines bodies."""

    def __init__(self, host: str, port: int, expected: int) -> None:
        self.expected = expected
        self.records = 0
        self._connection = http.client.HTTPConnection(host, port, timeout=5)

    def __call__(self) -> bool:
        self.records = int(stats(self._connection)["json_lines_records"])
        if self.records >= self.expected:
            self._connection.close()
            return True
        return False


def stats(connection: http.client.HTTPConnection) -> dict[str, object]:
    """The receiver's counters (one keep-alive request)."""
    connection.request("GET", "/stats")
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"receiver /stats: HTTP {response.status}")
    result: dict[str, object] = json.loads(body)
    return result
