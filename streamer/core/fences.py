"""Fences: per replayable stream, where each exactly-once stage sink's last
completed file ended.

Stage sinks fill them from their journals before any source starts; a file
source resuming below a fence cuts its reads there, so that no replayed piece
straddles it (a sink skips whole pieces only).
"""

from __future__ import annotations


class Fences:
    def __init__(self) -> None:
        self._ends: dict[tuple[str, str], dict[str, int]] = {}  # (source, key) -> sink -> end

    def set(self, sink: str, source: str, key: str, end: int) -> None:
        self._ends.setdefault((source, key), {})[sink] = end

    def of(self, source: str, key: str) -> list[int]:
        """The fences of the stream, ascending (empty: nothing to cut)."""
        return sorted(set(self._ends.get((source, key), {}).values()))

    def keys(self, source: str) -> list[str]:
        return [key for (src, key) in self._ends if src == source]
