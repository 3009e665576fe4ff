"""Admission at max_connections: a silent connection gives way, the oldest first;
one that sent bytes (an unfinished record) or is younger than EVICT_AFTER_S never."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from streamer.sources.socket.admission import EVICT_AFTER_S, Admission


@dataclass(eq=False)
class Open:
    peer: str
    first_since: float
    sent: int = 0
    closed: list[str] = field(default_factory=list)

    def silent_since(self, now: float) -> float:
        return 0.0 if self.sent else now - self.first_since

    def close(self) -> None:
        self.closed.append(self.peer)


def test_the_oldest_silent_connection_gives_way_and_no_other() -> None:
    async def scenario() -> tuple[list[str], list[str], int, int, list[bool]]:
        now = asyncio.get_running_loop().time()
        closed: list[str] = []
        conns = {Open("mid-record", now - 30, sent=5, closed=closed),
                 Open("silent-old", now - 5, closed=closed),
                 Open("silent-older", now - 9, closed=closed),
                 Open("too-young", now - EVICT_AFTER_S / 2, closed=closed)}
        forgotten: list[str] = []

        def forget(conn: Open) -> None:  # type: ignore[override]
            forgotten.append(conn.peer)
            conns.discard(conn)

        admission = Admission("tcp", 4, forget)  # type: ignore[arg-type]
        answers = []
        for i in range(3):
            answers.append(admission.may_open(f"new{i}", 10, len(conns), False, list(conns)))
            if answers[-1]:  # the new one is open, and sends
                conns.add(Open(f"new{i}", now, sent=1))
        return closed, forgotten, admission.evicted, admission.refused, answers

    closed, forgotten, evicted, refused, answers = asyncio.run(scenario())
    assert closed == forgotten == ["silent-older", "silent-old"]
    # the third finds only one mid-record and one younger than a second: refused
    assert (answers, evicted, refused) == ([True, True, False], 2, 1)
