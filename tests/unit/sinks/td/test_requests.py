"""Pure request building for the Treasure Data sink: targets, routing, ingest bodies."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.gen import iter_records
from streamer.core.ack import Ack
from streamer.core.batch import Batch, Origin, Piece
from streamer.core.lines import Lines
from streamer.observability.masking import SecretMasker
from streamer.sinks.td.check import td_check_lines
from streamer.sinks.td.requests import (
    EVENTS_PREFIX,
    EVENTS_SUFFIX,
    INGEST_MAX_BODY,
    INGEST_MAX_RECORD,
    INGEST_MAX_RECORDS,
    FlatBatch,
    Targets,
    ingest_requests,
    route,
    split,
)
from tests.helpers import TD_SINK_KEY, td_sink_model


def piece(records: list[dict[str, Any]], path: str = "/in.ndjson", offset: int = 0,
          raws: list[bytes] | None = None) -> Piece:
    raws = raws if raws is not None else [orjson.dumps(r) for r in records]
    return Piece(records, Lines.of(raws), Ack(1), Origin("src", path, offset))


def batch_of(*pieces: Piece) -> Batch:
    batch = Batch()
    for p in pieces:
        batch.add(p)
    return batch


def events_of(body: bytes) -> list[dict[str, Any]]:
    payload = orjson.loads(body)
    assert list(payload) == ["events"]
    return payload["events"]


# -- targets -----------------------------------------------------------------------------


def test_postback_header_auth_target() -> None:
    targets = Targets(td_sink_model(endpoint="http://127.0.0.1:8080"), TD_SINK_KEY)
    target = targets.get("events")
    assert targets.origin == "http://127.0.0.1:8080"
    assert target.request_target == target.path == "/postback/v3/event/my_db/events"
    assert targets.headers["X-TD-Write-Key"] == TD_SINK_KEY
    assert targets.headers["Content-Type"] == "application/json"
    assert "Authorization" not in targets.headers
    assert targets.get("events") is target  # built once per table


def test_postback_query_auth_puts_the_encoded_key_only_in_the_url() -> None:
    targets = Targets(td_sink_model(auth="query"), TD_SINK_KEY)
    target = targets.get("other_table")
    path, query = target.request_target.split("?")
    assert path == target.path == "/postback/v3/event/my_db/other_table"
    assert query == "td_write_key=1%2Fabc%2Bdef%2Fghi%3D"
    assert parse_qs(query) == {"td_write_key": [TD_SINK_KEY]}
    assert targets.origin == "https://in.treasuredata.com"
    assert TD_SINK_KEY not in target.path and "td_write_key" not in target.path
    assert "X-TD-Write-Key" not in targets.headers


def test_ingest_target_and_headers() -> None:
    targets = Targets(td_sink_model(api="ingest", endpoint="eu01"), TD_SINK_KEY)
    target = targets.get("events")
    assert targets.origin + target.request_target == \
        "https://eu01.records.in.treasuredata.com/my_db/events"
    assert targets.headers["Authorization"] == f"TD1 {TD_SINK_KEY}"
    assert targets.headers["Content-Type"] == "application/vnd.treasuredata.v1+json"
    assert targets.headers["Accept"] == "application/vnd.treasuredata.v1+json"


def test_an_endpoint_path_prefixes_every_target() -> None:
    targets = Targets(td_sink_model(endpoint="https://gw.example:8443/td/"), TD_SINK_KEY)
    assert targets.origin == "https://gw.example:8443"
    assert targets.get("events").request_target == "/td/postback/v3/event/my_db/events"


def test_default_endpoints() -> None:
    assert td_sink_model().base_url == "https://in.treasuredata.com"
    assert td_sink_model(api="ingest").base_url == "https://us01.records.in.treasuredata.com"
    assert td_sink_model(endpoint="http://h:1/").base_url == "http://h:1"


def test_the_masker_hides_every_form_of_the_key() -> None:
    targets = Targets(td_sink_model(auth="query"), TD_SINK_KEY)
    text = (f"GET {targets.get('events').request_target} key={TD_SINK_KEY} "
            f"echo={quote(TD_SINK_KEY)} Authorization: TD1 9/other")
    assert "1%2Fabc%2Bdef%2Fghi%3D" in text and "1/abc%2Bdef/ghi%3D" in text
    assert SecretMasker(targets.secrets()).mask(text) == (
        "GET /postback/v3/event/my_db/events?td_write_key=*** key=*** echo=*** "
        "Authorization: TD1 ***")


def test_check_lines_never_print_the_key() -> None:
    text = "\n".join(td_check_lines(td_sink_model(api="ingest", table_field="kind")))
    assert TD_SINK_KEY not in text
    assert "write_key: set (hidden)" in text and "table_field=kind" in text
    assert "max_elapsed_s=0 (until shutdown)" in text


# -- flat view and routing -------------------------------------------------------------------


def test_flat_view_maps_indices_back_to_origins() -> None:
    a = piece([{"a": 1}, {"a": 2}], path="/a", offset=0)
    b = piece([{"b": 1}], path="/b", offset=100)
    c = piece([{"c": 1}, {"c": 2}, {"c": 3}], path="/a", offset=200)
    flat = FlatBatch.of(batch_of(a, b, c))
    assert flat.raws == a.raws + b.raws + c.raws
    assert flat.records == a.records + b.records + c.records
    assert [flat.origin(i).offset for i in range(6)] == [0, 0, 100, 200, 200, 200]
    single = FlatBatch.of(batch_of(a))
    assert single.raws is a.raws  # one piece: no copy


def test_route_without_table_field_is_one_range() -> None:
    routes = route([{}] * 7, None, "events")
    assert routes.groups == {"events": range(7)} and routes.rejected == []


def test_route_by_field() -> None:
    records = [{"t": "clicks"}, {"t": "views"}, {}, {"t": None}, {"t": "Bad-Name"},
               {"t": "ab"}, {"t": 5}, {"t": ["x"]}, {"t": "clicks"}, {"t": "x" * 256},
               {"t": "y" * 255}]
    routes = route(records, "t", "events")
    assert routes.groups == {"clicks": [0, 8], "views": [1], "events": [2, 3],
                             "y" * 255: [10]}
    assert [r.index for r in routes.rejected] == [4, 5, 6, 7, 9]
    assert routes.rejected[0].reason == (
        "invalid table name in field 't': \"Bad-Name\" (must match [a-z0-9_]{3,255})")


# -- ingest bodies ---------------------------------------------------------------------------


def test_ingest_bodies_are_spliced_raw_bytes() -> None:
    # raws as they arrived: spacing and key order differ from a re-serialization
    raws = [b'{ "b": 1,  "a": "x" }', b'{"n":1.50}', b'{"u":"caf\\u00e9"}\r']
    records = [orjson.loads(r) for r in raws]
    flat = FlatBatch.of(batch_of(piece(records, raws=raws)))
    requests, rejected = ingest_requests(flat, route(records, None, "events"))
    assert rejected == []
    assert len(requests) == 1
    body = requests[0].body
    assert body == EVENTS_PREFIX + b",".join(raws) + EVENTS_SUFFIX
    assert events_of(body) == records
    assert list(requests[0].indices) == [0, 1, 2]


def test_ingest_splits_at_500_records() -> None:
    records = list(iter_records(1234, 5))
    flat = FlatBatch.of(batch_of(piece(records[:700]), piece(records[700:])))
    requests, _ = ingest_requests(flat, route(records, None, "events"))
    assert [len(r.indices) for r in requests] == [500, 500, 234]
    assert [e for r in requests for e in events_of(r.body)] == records
    assert [i for r in requests for i in r.indices] == list(range(1234))


def test_ingest_splits_at_5_mb_exactly() -> None:
    size = 400_000
    pad = size - len(orjson.dumps({"p": ""}))
    records = [{"p": str(i % 10) * pad} for i in range(30)]
    flat = FlatBatch.of(batch_of(piece(records)))
    requests, _ = ingest_requests(flat, route(records, None, "events"))
    # 12 parts of 400,000 + 11 commas + 13 bytes of wrapping = 4,800,024; a 13th won't fit
    assert [len(r.indices) for r in requests] == [12, 12, 6]
    assert all(len(r.body) <= INGEST_MAX_BODY for r in requests)
    assert len(requests[0].body) == 12 * size + 11 + len(EVENTS_PREFIX + EVENTS_SUFFIX)
    assert [e for r in requests for e in events_of(r.body)] == records


@settings(max_examples=150, deadline=None)
@given(sizes=st.lists(st.integers(1, 60), min_size=0, max_size=80),
       max_records=st.integers(1, 12), max_body=st.integers(75, 400))
def test_split_is_maximal_and_within_limits(sizes: list[int], max_records: int,
                                            max_body: int) -> None:
    overhead = len(EVENTS_PREFIX + EVENTS_SUFFIX)

    def body(a: int, b: int) -> int:
        return overhead + sum(sizes[a:b]) + (b - a - 1)

    ranges = split(sizes, max_records, max_body)
    assert [i for a, b in ranges for i in range(a, b)] == list(range(len(sizes)))
    for a, b in ranges:
        assert b - a <= max_records
        assert body(a, b) <= max_body
        if b < len(sizes):  # greedy: one more record would break a limit
            assert b - a == max_records or body(a, b + 1) > max_body


def test_oversize_records_are_rejected_others_go_through() -> None:
    big = {"blob": "z" * INGEST_MAX_RECORD}
    # over the limit as sent, within it once compact: the compact form is sent
    loose = {"k": "v" * (INGEST_MAX_RECORD - 20)}
    loose_raw = b"{" + b" " * 100 + orjson.dumps(loose)[1:]
    records = [{"a": 1}, big, loose, {"a": 2}]
    raws = [b'{"a":1}', orjson.dumps(big), loose_raw, b'{"a":2}']
    flat = FlatBatch.of(batch_of(piece(records, raws=raws)))
    requests, rejected = ingest_requests(flat, route(records, None, "events"))
    assert [(r.index, r.table) for r in rejected] == [(1, "events")]
    assert rejected[0].reason == (f"record of {INGEST_MAX_RECORD + 11} bytes exceeds the Data "
                                  f"Ingestion API limit of {INGEST_MAX_RECORD} bytes")
    assert [i for r in requests for i in r.indices] == [0, 2, 3]
    assert [e for r in requests for e in events_of(r.body)] == [records[0], loose, records[3]]
    assert sum(len(r.indices) for r in requests) + len(rejected) == 4


def test_ingest_with_routing_groups_per_table() -> None:
    records = [{"t": "aaa", "i": i} if i % 3 else {"t": "bbb", "i": i} for i in range(1100)]
    records[5]["t"] = "NOPE"
    flat = FlatBatch.of(batch_of(piece(records)))
    routes = route(records, "t", "events")
    requests, rejected = ingest_requests(flat, routes)
    assert rejected == [] and [r.index for r in routes.rejected] == [5]
    by_table: dict[str, list[dict[str, Any]]] = {}
    for request in requests:
        assert len(request.indices) <= INGEST_MAX_RECORDS
        events = events_of(request.body)
        assert events == [records[i] for i in request.indices]
        by_table.setdefault(request.table, []).extend(events)
    assert by_table == {"aaa": [r for r in records if r["t"] == "aaa"],
                        "bbb": [r for r in records if r["t"] == "bbb"]}


def test_a_mapping_shapes_each_record_and_rejects_what_does_not_convert() -> None:
    from streamer.mapping.spec import ColumnSpec
    from streamer.mapping.values import RecordMapper

    mapper = RecordMapper([ColumnSpec.model_validate(c) for c in [
        {"name": "time", "from": "event.at", "type": "timestamp", "format": "epoch_s"},
        {"name": "user_id", "from": "user.id", "type": "integer"},
        {"name": "tags", "type": "json"}, {"name": "env", "value": "prod"}]])
    records = [{"event": {"at": "2024-02-29T12:00:00.9+01:00"}, "user": {"id": "7"},
                "tags": ["a"], "dropped": 1},
               {"event": {"at": "not a time"}, "user": {"id": 8}},
               {"event": {"at": "1969-12-31T23:59:59.5Z"}}]
    p = piece(records, offset=40)
    flat = FlatBatch.of(batch_of(p), mapper)
    assert list(map(orjson.loads, [flat.raws[0], flat.raws[2]])) == [
        {"time": 1709204400, "user_id": 7, "tags": ["a"], "env": "prod"},
        {"time": -1, "user_id": None, "tags": None, "env": "prod"}]
    assert [(r.index, r.reason) for r in flat.unmapped] == [
        (1, "column time: not a timestamp in the parse format")]
    assert flat.original(1) == p.raws[1]  # dead letters hold the bytes as they arrived
    routes = route(flat.raws, None, "events", flat.unmapped)
    assert routes.groups == {"events": [0, 2]}
    requests, rejected = ingest_requests(flat, routes)
    assert events_of(requests[0].body)[0]["time"] == 1709204400 and not rejected
    # no mapping: the bytes as they arrived, untouched
    assert FlatBatch.of(batch_of(p)).raws is p.raws


def test_td_time_column_must_be_unix_seconds() -> None:
    import pytest

    from streamer.config.root import ConfigError, parse_config

    cfg = {"data_dir": "/tmp/streamer-map-test", "sources": {"in": {"type": "stdin"}},
           "sinks": {"td": {"type": "td", "database": "db_1", "table": "tbl_1",
                            "write_key": "1/abc",
                            "mapping": [{"name": "time", "from": "at", "type": "timestamp"}]}}}
    with pytest.raises(ConfigError) as info:
        parse_config(cfg)
    assert info.value.problems == ['sinks.td.mapping: column time: Treasure Data needs unix '
                                   'seconds (type = "timestamp" with format = "epoch_s", '
                                   'or "integer")']
