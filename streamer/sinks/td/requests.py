"""Treasure Data requests, built without I/O (the sending is streamer/sinks/td.py).

* Targets: the URL and headers of one (database, table); the write key lives
  only in them and never in anything printed (`Target.path` is what logs show).
* Routing: with ``table_field`` each record names its table; an invalid name
  sends that record to the dead letters.
* Postback: one request per record, the body being the record's bytes as they
  arrived.
* Mapping (`mapping` in the config): each record is replaced by the object of
  its mapped columns (mapping/values.py) before routing; a record whose values
  do not convert is rejected with the column and the reason.  Without one the
  bytes go as they arrived.
* Ingest (Data Ingestion API): ``{"events":[...]}`` bodies spliced from the
  records' bytes with one ``b",".join`` per request -- nothing is
  re-serialized -- split at 500 records and 5,000,000 bytes; a record over
  1,000,000 bytes is rejected before sending.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from operator import add
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from streamer.core.batch import Batch, Origin, Piece
from streamer.core.json_dumps import dumps
from streamer.mapping.values import Bad, RecordMapper
from streamer.sinks.td.config import TdSinkConfig

NAME_RE = re.compile(r"[a-z0-9_]{3,255}")
INGEST_MAX_RECORDS = 500
INGEST_MAX_BODY = 5_000_000
INGEST_MAX_RECORD = 1_000_000
EVENTS_PREFIX = b'{"events":['
EVENTS_SUFFIX = b"]}"
POSTBACK_CONTENT_TYPE = "application/json"
INGEST_CONTENT_TYPE = "application/vnd.treasuredata.v1+json"
USER_AGENT = "streamer/0.1"


# -- destinations -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    table: str
    request_target: str  # path and query: may carry td_write_key, never log it
    path: str  # without the query: safe to log


class Targets:
    """Request targets per table, and the origin and headers shared by every
    request."""

    def __init__(self, cfg: TdSinkConfig, key: str) -> None:
        self.api = cfg.api
        self.database = cfg.database
        base = urlsplit(cfg.base_url)
        self.origin = f"{base.scheme}://{base.netloc}"
        self.proxy = cfg.proxy()
        self._base_path = base.path.rstrip("/")
        self._key = key
        self._query = f"?td_write_key={quote(key, safe='')}" if cfg.auth == "query" else ""
        self._cache: dict[str, Target] = {}
        if cfg.api == "ingest":
            self.headers = {"Authorization": f"TD1 {key}",
                            "Content-Type": INGEST_CONTENT_TYPE,
                            "Accept": INGEST_CONTENT_TYPE}
        else:
            self.headers = {"Content-Type": POSTBACK_CONTENT_TYPE}
            if cfg.auth == "header":
                self.headers["X-TD-Write-Key"] = key
        self.headers["User-Agent"] = USER_AGENT

    def secrets(self) -> tuple[str, ...]:
        """The secrets in these requests, for a SecretMasker (which masks their
        URL-encoded forms too)."""
        return (self._key, *(self.proxy.secrets() if self.proxy else ()))

    def get(self, table: str) -> Target:
        target = self._cache.get(table)
        if target is None:
            prefix = "/postback/v3/event" if self.api == "postback" else ""
            path = f"{self._base_path}{prefix}/{self.database}/{table}"
            target = self._cache[table] = Target(table, path + self._query, path)
        return target


# -- a batch seen as flat lists ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    reason: str
    table: str | None = None  # None: the record named no valid table



@dataclass(slots=True)
class FlatBatch:
    """The records of a batch as flat lists, with a way back to their origin."""

    raws: list[bytes]
    pieces: list[Piece]
    starts: list[int]  # index of the first record of each piece
    origins: list[Origin]
    decoded: list[dict[str, Any]] | None = None
    arrived: list[bytes] | None = None  # with a mapping: the bytes before it
    unmapped: list[Rejected] = field(default_factory=list)

    @classmethod
    def of(cls, batch: Batch, mapper: RecordMapper | None = None) -> FlatBatch:
        if len(batch.pieces) == 1:
            piece = batch.pieces[0]
            flat = cls(piece.raws, batch.pieces, [0], [piece.origin])
        else:
            raws: list[bytes] = []
            starts: list[int] = []
            for piece in batch.pieces:
                starts.append(len(raws))
                raws.extend(piece.raws)
            flat = cls(raws, batch.pieces, starts, [p.origin for p in batch.pieces])
        if mapper is not None:
            flat._map(mapper)
        return flat

    def _map(self, mapper: RecordMapper) -> None:
        """Each record becomes the object of its mapped columns; the records whose
        values do not convert are kept (as b"") in `unmapped`, not sent."""
        names, values = mapper.names, mapper.values
        mapped: list[dict[str, Any]] = []
        for index, record in enumerate(self.records):
            try:
                mapped.append(dict(zip(names, values(record), strict=True)))
            except Bad as exc:
                mapped.append({})
                self.unmapped.append(Rejected(index, str(exc)))
        self.arrived = self.raws
        try:
            self.raws = list(map(orjson.dumps, mapped))
        except TypeError:  # a value nested deeper than orjson writes: rare, dearer
            self.raws = list(map(dumps, mapped))
        self.decoded = mapped

    def original(self, index: int) -> bytes:
        """A record's bytes as they arrived (for dead letters)."""
        return (self.raws if self.arrived is None else self.arrived)[index]

    @property
    def records(self) -> list[dict[str, Any]]:
        """Decoded only when asked (table routing, an oversize record)."""
        if self.decoded is None:
            self.decoded = [r for piece in self.pieces for r in piece.records]
        return self.decoded

    def origin(self, index: int) -> Origin:
        return self.origins[bisect_right(self.starts, index) - 1]


# -- routing ----------------------------------------------------------------------


@dataclass(slots=True)
class Routes:
    groups: dict[str, Sequence[int]]  # table -> record indices, in record order
    rejected: list[Rejected] = field(default_factory=list)


def route(records: Sequence[Any], table_field: str | None,
          default_table: str, skip: Sequence[Rejected] = ()) -> Routes:
    """Group record indices by destination table.  Without `table_field` every
    record goes to `default_table` (no per-record work); with it a record
    without the field goes to `default_table` and one whose value is not a valid
    table name is rejected.  `skip`: records already rejected (not routed)."""
    skipped = {item.index for item in skip}
    if table_field is None:
        if skipped:
            return Routes({default_table: [i for i in range(len(records)) if i not in skipped]})
        return Routes({default_table: range(len(records))})
    groups: dict[str, list[int]] = {}
    rejected: list[Rejected] = []
    checked: dict[Any, bool] = {}
    for index, record in enumerate(records):
        if index in skipped:
            continue
        name = record.get(table_field)
        if name is None:
            name = default_table
        try:
            ok = checked[name]
        except (KeyError, TypeError):
            ok = isinstance(name, str) and NAME_RE.fullmatch(name) is not None
            if isinstance(name, str):
                checked[name] = ok
        if ok:
            bucket = groups.get(name)
            if bucket is None:
                bucket = groups[name] = []
            bucket.append(index)
        else:
            shown = orjson.dumps(name)[:80].decode(errors="replace")
            rejected.append(Rejected(index, f"invalid table name in field {table_field!r}: "
                                            f"{shown} (must match {NAME_RE.pattern})"))
    return Routes(groups, rejected)


# -- ingest bodies ------------------------------------------------------------------


@dataclass(slots=True)
class IngestRequest:
    table: str
    body: bytes
    indices: Sequence[int]


def oversize_reason(size: int) -> str:
    return f"record of {size} bytes exceeds the Data Ingestion API limit of " \
           f"{INGEST_MAX_RECORD} bytes"


def ingest_requests(flat: FlatBatch, routes: Routes, *, max_records: int = INGEST_MAX_RECORDS,
                    max_body: int = INGEST_MAX_BODY, max_record: int = INGEST_MAX_RECORD,
                    ) -> tuple[list[IngestRequest], list[Rejected]]:
    """Split every routed group into bodies of at most `max_records` records and
    `max_body` bytes.  Records over `max_record` bytes are rejected unless their
    compact form fits (then that form is sent: the API measures the event)."""
    requests: list[IngestRequest] = []
    rejected: list[Rejected] = []
    raws = flat.raws
    for table, indices in routes.groups.items():
        if isinstance(indices, range):
            parts = raws[indices.start:indices.stop]
        else:
            parts = [raws[i] for i in indices]
        sizes = list(map(len, parts))
        if sizes and max(sizes) > max_record:
            indices, parts, sizes = _drop_oversize(flat, table, indices, parts, sizes,
                                                   max_record, rejected)
        for start, stop in split(sizes, max_records, max_body):
            body = EVENTS_PREFIX + b",".join(parts[start:stop]) + EVENTS_SUFFIX
            requests.append(IngestRequest(table, body, indices[start:stop]))
    return requests, rejected


def ingest_halves(flat: FlatBatch, indices: Sequence[int]
                  ) -> list[tuple[Sequence[int], bytes]]:
    """A request's records as two requests, bodies built as `ingest_requests` builds
    them (a record over the 1 MB rule in its compact form).  For a 413 to a request
    of several records: the endpoint takes less than the API's 5 MB (a gateway in
    front), so the halves go on their own, down to single records (which are then
    dead-lettered with the 413)."""
    raws, max_record = flat.raws, INGEST_MAX_RECORD
    half = len(indices) // 2
    out = []
    for part in (indices[:half], indices[half:]):
        parts = [raws[i] if len(raws[i]) <= max_record else dumps(flat.records[i])
                 for i in part]
        out.append((part, EVENTS_PREFIX + b",".join(parts) + EVENTS_SUFFIX))
    return out


def _drop_oversize(flat: FlatBatch, table: str, indices: Sequence[int], parts: list[bytes],
                   sizes: list[int], max_record: int, rejected: list[Rejected],
                   ) -> tuple[list[int], list[bytes], list[int]]:
    kept_indices: list[int] = []
    kept_parts: list[bytes] = []
    for index, part, size in zip(indices, parts, sizes, strict=True):
        if size > max_record:
            compact = dumps(flat.records[index])
            if len(compact) > max_record:
                rejected.append(Rejected(index, oversize_reason(len(compact)), table))
                continue
            part = compact
        kept_indices.append(index)
        kept_parts.append(part)
    return kept_indices, kept_parts, list(map(len, kept_parts))


def split(sizes: Sequence[int], max_records: int, max_body: int) -> list[tuple[int, int]]:
    """[start, stop) ranges over `sizes` such that each spliced body
    (prefix + parts joined by commas + suffix) holds at most `max_records` parts
    and `max_body` bytes.  A part too big on its own still gets a range of one."""
    count = len(sizes)
    if not count:
        return []
    overhead = len(EVENTS_PREFIX) + len(EVENTS_SUFFIX) - 1  # n parts need n-1 commas
    if sum(sizes) + count + overhead <= max_body and count <= max_records:
        return [(0, count)]
    # cost[k] = bytes of the first k parts plus one comma each
    cost = list(map(add, accumulate(sizes, initial=0), range(count + 1)))
    budget = max_body - overhead
    ranges = []
    start = 0
    while start < count:
        last = min(start + max_records, count)
        stop = bisect_right(cost, cost[start] + budget, start + 1, last + 1) - 1
        stop = max(stop, start + 1)
        ranges.append((start, stop))
        start = stop
    return ranges
