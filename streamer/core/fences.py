"""Fences: per replayable stream, where each exactly-once stage sink's last
completed file ended.

Stage sinks fill them from their journals before any source starts; a file
source resuming below a fence cuts its reads there, so that no replayed piece
straddles it (a sink skips whole pieces only).

Streams that move between instances (Kafka partitions on a rebalance) are also
handed over here: the source announces assignments before it fetches from them
and revocations before it commits, and every registered sink answers (an
assignment: the sink reads the stream's shared ledger and raises its fence).
"""

from __future__ import annotations

from typing import Protocol


class Handoffs(Protocol):
    async def assigned(self, source: str, keys: list[str], epoch: int) -> None: ...
    async def revoked(self, source: str, keys: list[str], epoch: int) -> None: ...


class Fences:
    def __init__(self) -> None:
        self._ends: dict[tuple[str, str], dict[str, int]] = {}  # (source, key) -> sink -> end
        self._handoffs: list[Handoffs] = []

    def set(self, sink: str, source: str, key: str, end: int) -> None:
        self._ends.setdefault((source, key), {})[sink] = end

    def of(self, source: str, key: str) -> list[int]:
        """The fences of the stream, ascending (empty: nothing to cut)."""
        return sorted(set(self._ends.get((source, key), {}).values()))

    def keys(self, source: str) -> list[str]:
        return [key for (src, key) in self._ends if src == source]

    def on_handoff(self, sink: Handoffs) -> None:
        self._handoffs.append(sink)

    async def assigned(self, source: str, keys: list[str], epoch: int) -> None:
        """Streams now read by this instance from `epoch` on: returns once every
        sink has set their fences."""
        for sink in self._handoffs:
            await sink.assigned(source, keys, epoch)

    async def revoked(self, source: str, keys: list[str], epoch: int) -> None:
        """Streams no longer read here: returns once no sink will complete a file
        of them (what was completing is complete, open files abandoned)."""
        for sink in self._handoffs:
            await sink.revoked(source, keys, epoch)
