"""Which new connections a socket source takes: none while half of the process's
descriptors are in use, none past `max_connections` -- unless, at the limit, a
connection that has sent not a byte for `EVICT_AFTER_S` gives way (the oldest such;
one with bytes of an unfinished record is never cut)."""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable, Iterable
from typing import Protocol

from streamer.observability.log_limit import limit_group

log = logging.getLogger("streamer.source.socket")

DESCRIPTORS_UNLIMITED = 1 << 30  # RLIM_INFINITY: no ceiling worth checking
EVICT_AFTER_S = 1.0  # at max_connections: a silent connection this old gives way


def descriptor_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return DESCRIPTORS_UNLIMITED if soft == resource.RLIM_INFINITY else soft


def descriptor_ceiling() -> int:
    """Connections are refused from this descriptor number on: half of the soft
    RLIMIT_NOFILE stays for everything else, which fails (a stage file, a checkpoint:
    the run stops) where a refused producer only connects again later.  Read at each
    accept: a limit raised while running (prlimit) applies at once."""
    return descriptor_limit() // 2


class Open(Protocol):
    """An open connection, as admission sees it."""

    peer: str
    first_since: float  # loop time: accepted (or last let go by the read bound)

    def silent_since(self, now: float) -> float: ...

    def close(self) -> None: ...


class Admission:
    """The admission decisions of one source, and its counts of them."""

    def __init__(self, name: str, max_connections: int,
                 forget: Callable[[Open], None]) -> None:
        self.name = name
        self.max_connections = max_connections
        self._forget = forget  # the source stops counting a connection
        self.refused = 0
        self.evicted = 0  # closed at max_connections: silent, for a new connection

    def may_open(self, peer: str, descriptor: int, open_now: int, stopping: bool,
                 connections: Iterable[Open]) -> bool:
        """`descriptor`: the new connection's file descriptor number."""
        if not stopping and descriptor >= descriptor_ceiling():
            # descriptors are numbered lowest free first: this many are in use
            self.refused += 1
            log.warning("socket source %s: refusing connection from %s (%d open file "
                        "descriptors of the process's limit of %d, ulimit -n: half is "
                        "kept for files, stage files, checkpoints and outgoing "
                        "connections; %d connections open, %d refused so far)", self.name,
                        peer, descriptor + 1, descriptor_limit(), open_now, self.refused,
                        extra=limit_group(self.name))
            return False
        if not stopping and open_now >= self.max_connections \
                and self._evict_silent(peer, connections):
            return True
        if stopping or open_now >= self.max_connections:
            self.refused += 1
            # a flood of refusals is counted by the log handler (log_limit.py), per source
            log.warning("socket source %s: refusing connection from %s (%d open, "
                        "max_connections %d; %d refused so far)", self.name, peer,
                        open_now, self.max_connections, self.refused,
                        extra=limit_group(self.name))
            return False
        return True

    def _evict_silent(self, peer: str, connections: Iterable[Open]) -> bool:
        """Close the oldest connection that has sent nothing at all for
        EVICT_AFTER_S, so that `peer` takes its place; False: there is none."""
        now = asyncio.get_running_loop().time()
        silent = [c for c in connections if c.silent_since(now) >= EVICT_AFTER_S]
        if not silent:
            return False
        victim = min(silent, key=lambda c: c.first_since)
        self.evicted += 1
        log.warning("socket source %s: at max_connections %d: closing %s, which sent "
                    "nothing in %.1fs, for %s (%d closed so far)", self.name,
                    self.max_connections, victim.peer, now - victim.first_since, peer,
                    self.evicted, extra=limit_group(self.name))
        self._forget(victim)  # its place is taken now, not once the loop has closed it
        victim.close()
        return True
