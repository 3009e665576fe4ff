"""Socket source: a TCP (optionally TLS) server of NDJSON lines or length-prefixed frames.

Every connection is an `asyncio.Protocol` plus one pump task.  The protocol
only queues what the kernel hands it and pauses reading once
`read_buffer_bytes` are queued; the pump decodes everything queued in one go
(newline framing: the line splitter of every NDJSON stream, as for files;
length-prefixed: frames -> one NDJSON block -> `decode_block`) and emits it.
While a sink buffer is full the pump waits in `emit`, the queue fills, reading
pauses, the kernel buffers fill and the producers' sends block: TCP pushes back
and memory stays bounded (per connection: `read_buffer_bytes` + one frame + one
read).

Across connections, the bytes a source holds are bounded by `max_buffered_bytes`
(budget.py): past it, connections stop being read, one at a time excepted.

A connection is idle, and closed after `idle_timeout_s`, when no complete line
or frame came in that long (a byte now and then does not keep it open); time
spent held back by a full sink or by the bound does not count.  Before its first
complete line or frame a connection has `first_record_timeout_s` (when set) from its accept
(TLS: the handshake included), trickling bytes or not: connections that never send
must not hold `max_connections` for `idle_timeout_s`.  At `max_connections` a new
connection displaces the oldest one that has sent not a byte for a second (never
one mid-record) instead of being refused (admission.py).

Bad lines and frames go to the dead-letter file with the origin ``tcp:PEER``
and the stream offset (a position in the connection's byte stream, counted
from its first byte).  A length-prefixed frame above `max_frame_bytes` closes
the connection (the stream cannot be resynchronised); an oversize line is
skipped up to the next newline.

Producer acknowledgements (`ack = true`, length-prefixed framing): every time
the acknowledged prefix of a connection grows, the server writes the number of
frames of that connection acknowledged so far as a 4-byte big-endian unsigned
integer (modulo 2**32).  A frame is acknowledged when every record in it was
delivered (or dead-lettered) by every sink; empty and invalid frames count as
acknowledged once dead-lettered.  Counts are cumulative and only grow, so a
producer that keeps the frames it sent can drop the first N on reading N and
resend the rest on a new connection after a failure (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Any

from streamer.core.ack import Ack, OrderedCommitter
from streamer.core.batch import Origin
from streamer.observability.log_limit import limit_group
from streamer.observability.metrics import Readings
from streamer.pipeline.context import Context
from streamer.sources.fanout import Fanout
from streamer.sources.payloads import decode_payloads
from streamer.sources.socket.admission import Admission
from streamer.sources.socket.budget import ReadBudget
from streamer.sources.socket.config import SocketSourceConfig
from streamer.sources.socket.framing import Frames, LengthPrefixedFramer
from streamer.sources.socket.tls import (
    HANDSHAKE_TIMEOUT_S,
    Handshake,
    TlsFailures,
    server_context,
)
from streamer.sources.splitter import LineSplitter

log = logging.getLogger("streamer.source.socket")

ACK = struct.Struct(">I")
CLOSE_WAIT_S = 2.0  # after the drain: how long closing connections may take to flush acks


def format_peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address or "unknown")


class SocketSource:
    def __init__(self, name: str, cfg: SocketSourceConfig, fanout: Fanout,
                 context: Context) -> None:
        self.name = name
        self.cfg = cfg
        self.fanout = fanout
        self._shared_port = context.shard.count > 1
        self.connections: set[Connection] = set()
        self.stopping = False
        self.accepted = 0
        self.no_record = 0  # closed: no first line or frame within first_record_timeout_s
        self.admission = Admission(name, cfg.max_connections, self.forget)
        self.address: tuple | None = None  # (host, port) actually bound
        self.budget = ReadBudget(cfg.max_buffered_bytes)
        self._server: asyncio.Server | None = None
        self.tls_failures = TlsFailures(name, format_peer)
        self._handshakes: set[asyncio.Task] = set()  # TLS connections not made yet
        self._metrics = context.metrics
        self._metrics.watch(name, self._readings, owner="source")

    # -- lifecycle -----------------------------------------------------------------
    async def run(self) -> None:
        cfg = self.cfg
        host, _, port = cfg.listen.rpartition(":")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol_factory(), host.strip("[]"), int(port),
            backlog=min(max(cfg.max_connections, 128), 4096), reuse_address=True,
            reuse_port=self._shared_port)  # workers > 1: the kernel spreads connections
        self.address = self._server.sockets[0].getsockname()[:2]
        log.info("socket source %s listening on %s (%s framing%s%s)", self.name,
                 format_peer(self.address), cfg.framing, ", acks" if cfg.ack else "",
                 ", TLS" if cfg.tls else "")
        try:
            await asyncio.Future()  # serve until cancelled
        finally:
            self._stop_reading()

    def _protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        if self.cfg.tls is None:
            return lambda: Connection(self)
        context = server_context(self.cfg.tls)
        timeout = min([HANDSHAKE_TIMEOUT_S] + [bound for bound in (
            self.cfg.idle_timeout_s, self.cfg.first_record_timeout_s) if bound])
        return lambda: Handshake(context, lambda: Connection(self), self.tls_failures,
                                 self._handshakes, self.admit_handshake, timeout)

    def _stop_reading(self) -> None:
        """Shutdown: stop accepting and reading; connections stay open so that
        acknowledgements of what the sinks still drain can be written."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for task in list(self._handshakes):
            task.cancel()
        for conn in list(self.connections):
            conn.stop()

    async def after_drain(self) -> None:
        """Every sink drained: the last acks are queued; close and flush."""
        conns = list(self.connections)
        for conn in conns:
            conn.close()
        if conns:
            await asyncio.wait([c.closed for c in conns], timeout=CLOSE_WAIT_S)

    def save_checkpoint(self) -> None:
        """Nothing to save: a socket cannot be replayed (producers resend unacked frames)."""

    def finish(self) -> None:
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.abort()

    def close(self) -> None:
        self._metrics.unwatch(self.name, self._readings, owner="source")

    def _readings(self) -> Readings:
        """Read at scrape time (families.py)."""
        return {"socket_open_connections": len(self.connections),
                ("socket_connections", "accepted"): self.accepted,
                ("socket_connections", "refused"): self.admission.refused,
                ("socket_connections", "no_record"): self.no_record,
                ("socket_connections", "evicted"): self.admission.evicted,
                "socket_buffered_bytes": self.budget.buffered,
                **({("socket_connections", "tls_failed"): self.tls_failures.count}
                   if self.cfg.tls is not None else {})}

    # -- connections ---------------------------------------------------------------
    def admit(self, conn: Connection, descriptor: int) -> bool:
        """`descriptor`: the connection's file descriptor number."""
        if not self.admission.may_open(conn.peer, descriptor, len(self.connections),
                                       self.stopping, self.connections):
            return False
        self.accepted += 1
        self.connections.add(conn)
        return True

    def admit_handshake(self, peer: str, descriptor: int) -> bool:
        """A TLS connection about to shake hands holds a descriptor too: it counts
        against the ceiling and `max_connections` with those made and those shaking
        hands (a flood of half-open handshakes must not take every descriptor)."""
        return self.admission.may_open(peer, descriptor,
                                       len(self.connections) + len(self._handshakes),
                                       self.stopping, self.connections)

    def closed_without_record(self, conn: Connection) -> None:
        self.no_record += 1
        log.info("socket source %s: closing %s: no complete %s within "
                 "first_record_timeout_s %gs (%d closed so far)", self.name, conn.peer,
                 "frame" if self.cfg.framing == "length_prefixed" else "line",
                 self.cfg.first_record_timeout_s, self.no_record,
                 extra=limit_group(self.name))

    def forget(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.budget.forget(conn)


def _descriptor(transport: asyncio.BaseTransport) -> int:
    sock = transport.get_extra_info("socket")
    return sock.fileno() if sock is not None else -1


class Connection(asyncio.Protocol):
    def __init__(self, source: SocketSource) -> None:
        cfg = source.cfg
        self._source = source
        self._budget = source.budget
        self._max_frame = cfg.max_frame_bytes
        self._high_water = cfg.read_buffer_bytes
        self._framer: LengthPrefixedFramer | None = None
        self._lines: LineSplitter | None = None
        if cfg.framing == "length_prefixed":
            self._framer = LengthPrefixedFramer(cfg.max_frame_bytes)
        else:
            self._lines = LineSplitter(0, cfg.max_frame_bytes, "max_frame_bytes")
        self.transport: asyncio.Transport | None = None
        self.peer = "unknown"
        self.origin = "tcp:unknown"  # what dead letters name
        self._chunks: list[bytes] = []
        self._queued = 0
        self.held = 0  # bytes this connection holds: queued, being decoded, unfinished
        self._paused = False
        self._eof = False
        self._lost = False
        self._wake = asyncio.Event()
        self._idle_since = 0.0  # loop time of the last complete line or frame
        # first_record_timeout_s runs from here (accept; TLS: before the handshake)
        self.first_since = asyncio.get_running_loop().time()
        self.completed = False  # a first complete line or frame came in
        self.received = 0  # bytes ever read
        self._task: asyncio.Task | None = None
        self._frames = 0  # frames seen on the wire so far: the acknowledgement count
        self._committer = OrderedCommitter(0, self._write_ack) if cfg.ack else None
        self._settled = asyncio.Event()  # every frame seen so far is acknowledged
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- protocol callbacks (synchronous, one per read) -------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop: not a subclass
        self.peer = format_peer(transport.get_extra_info("peername"))
        self.origin = f"tcp:{self.peer}"
        if not self._source.admit(self, _descriptor(transport)):
            transport.close()
            return
        self._task = asyncio.get_running_loop().create_task(
            self._pump(), name=f"socket:{self._source.name}:{self.peer}")

    def data_received(self, data: bytes) -> None:
        if self._task is None:
            return
        self._chunks.append(data)
        size = len(data)
        self.received += size
        self._queued += size
        self.held += size
        self._budget.buffered += size
        if not self._paused and not self._may_read():
            self._pause()
        self._wake.set()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake.set()
        # keep the write side open for the last acks (half-close); TLS cannot
        return self._committer is not None and self._source.cfg.tls is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._budget.buffered -= self.held
        self.held = 0
        self._wake.set()
        self._settled.set()
        if not self.closed.done():
            self.closed.set_result(None)
        self._source.forget(self)

    # -- control from the source ---------------------------------------------------
    def _pause(self) -> None:
        if self.transport is not None and not self._paused and not self._lost:
            self.transport.pause_reading()
            self._paused = True

    def _may_read(self) -> bool:
        return self._queued < self._high_water and self._budget.may_read(self)

    def resume(self) -> None:
        """The source's bound let go: read again (the pump's own limit permitting)."""
        if self._paused and not self._lost and not self._source.stopping \
                and self._queued < self._high_water and not self._dead:
            self._paused = False
            now = asyncio.get_running_loop().time()
            self._idle_since = now  # held-back time is not idle
            if not self.completed:
                self.first_since = now
            self.transport.resume_reading()
            self._wake.set()

    def _release(self) -> None:
        """After a read was decoded: what this connection still holds."""
        parser = self._lines if self._lines is not None else self._framer
        held = self._queued + parser.buffered  # type: ignore[union-attr]
        if held < self.held:
            self._budget.buffered -= self.held - held
            self.held = held
            self._budget.rebalance()

    def silent_since(self, now: float) -> float:
        """How long this connection has been open without sending a byte (0: it sent)."""
        if self.received or self.completed or self._lost or self._task is None:
            return 0.0
        return now - self.first_since

    def _deadline(self, idle: float, first: float) -> float | None:
        """Loop time at which the connection is closed unless a line or frame completes."""
        deadlines = [self._idle_since + idle] if idle else []
        if first and not self.completed:
            deadlines.append(self.first_since + first)
        return min(deadlines) if deadlines else None

    def stop(self) -> None:
        self._pause()
        if self._task is not None:
            self._task.cancel()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- the pump ------------------------------------------------------------------
    async def _pump(self) -> None:
        idle = self._source.cfg.idle_timeout_s
        first = self._source.cfg.first_record_timeout_s
        loop = asyncio.get_running_loop()
        self._idle_since = loop.time()  # the last complete line or frame
        try:
            while True:
                if not self._chunks:
                    if self._eof or self._lost:
                        break
                    self._wake.clear()
                    deadline = None if self._paused else self._deadline(idle, first)
                    try:
                        async with asyncio.timeout_at(deadline):
                            await self._wake.wait()
                    except TimeoutError:
                        if not self.completed and first \
                                and loop.time() >= self.first_since + first:
                            self._source.closed_without_record(self)
                            break
                        log.info("socket source %s: closing %s, idle for %gs (no complete "
                                 "%s)", self._source.name, self.peer, idle,
                                 "line" if self._lines is not None else "frame")
                        break
                    continue
                chunks, self._chunks, self._queued = self._chunks, [], 0
                data = b"".join(chunks) if len(chunks) > 1 else chunks[0]
                if self._paused and self._budget.may_read(self):
                    self._paused = False
                    if not self._lost:
                        self.transport.resume_reading()
                self._source.fanout.stats.bytes += len(data)
                if await self._handle(data):
                    self._idle_since = loop.time()
                    self.completed = True
                    self._budget.frame_done(self)
                self._release()
                if self._dead:
                    self._pause()
                    break
            if not self._dead:
                await self._handle(None)
                self._release()
            committer = self._committer
            if committer is not None and committer.committed < self._frames and not self._lost:
                self._settled.clear()  # set by the ack that covers every frame, or on loss
                await self._settled.wait()
        except Exception:
            log.exception("socket source %s: connection %s failed", self._source.name, self.peer)
        finally:
            if not self._source.stopping:
                self.close()

    @property
    def _dead(self) -> bool:
        return self._framer is not None and self._framer.dead

    async def _handle(self, data: bytes | None) -> bool:
        """Decode and emit one read; None: the end of the stream.  True when it
        held a complete line (a record or a bad one) or frame."""
        lines = self._lines
        if lines is not None:
            decoded, start = lines.finish() if data is None else lines.feed(data)
            # kept: a stop delivers the whole read (a socket cannot be read again)
            await self._source.fanout.emit(decoded, Ack,
                                           Origin(self._source.name, self.origin, start),
                                           kept=True)
            return bool(decoded.raws or decoded.bad)
        assert self._framer is not None
        return await self._handle_frames(self._framer.finish() if data is None
                                         else self._framer.feed(data))

    async def _handle_frames(self, found: Frames) -> bool:
        count = len(found.frames) + found.empty
        if not count and not found.bad:
            return False
        self._frames += count
        end = self._frames
        decoded = decode_payloads(found.frames, found.offsets.__getitem__, self._max_frame,
                                  "max_frame_bytes")
        if found.bad:
            decoded.bad = sorted(found.bad + decoded.bad, key=lambda b: b.offset)
        committer = self._committer
        # only bad frames that are not empty ones: no frame count to acknowledge
        track = (Ack if committer is None or not count
                 else lambda sinks: committer.track(end, sinks))
        start = found.offsets[0] if found.offsets else found.bad[0].offset
        await self._source.fanout.emit(decoded, track,
                                       Origin(self._source.name, self.origin, start),
                                       kept=True)
        return True

    def _write_ack(self, committed: int) -> None:
        if committed == self._frames:
            self._settled.set()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(ACK.pack(committed & 0xFFFFFFFF))
