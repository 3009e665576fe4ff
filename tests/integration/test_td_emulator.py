"""Self-tests of the Treasure Data emulator (tests/emulators/td.py) via its fixture."""

from __future__ import annotations

import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import orjson
import pytest
from yarl import URL

from tests.fixtures.td import TDEmulator, run_td_emulator

POSTBACK_PATH = "/postback/v3/event/test_db/test_tbl"
INGEST_PATH = "/test_db/test_tbl"
INGEST_CT = "application/vnd.treasuredata.v1+json"
POSTBACK_MAX_BODY = 1_048_064
INGEST_MAX_BODY = 5_000_000
INGEST_MAX_EVENT = 1_000_000
WRONG_KEY = "wrong-key/zzz-4242"
CONNECTION_ERROR = "connection-error"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:
        yield client


async def post(
    session: aiohttp.ClientSession,
    url: str | URL,
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    async with session.post(url, data=body, headers=dict(headers or {})) as response:
        return Reply(response.status, await response.read(), dict(response.headers))


async def postback(
    session: aiohttp.ClientSession,
    emu: TDEmulator,
    record: object,
    key: str | None = None,
    path: str = POSTBACK_PATH,
) -> Reply:
    headers = {"Content-Type": "application/json", "X-TD-Write-Key": key or emu.key}
    return await post(session, emu.url + path, orjson.dumps(record), headers)


def ingest_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"TD1 {key}", "Content-Type": INGEST_CT, "Accept": INGEST_CT}


async def ingest(
    session: aiohttp.ClientSession,
    emu: TDEmulator,
    payload: object,
    path: str = INGEST_PATH,
) -> Reply:
    return await post(session, emu.url + path, orjson.dumps(payload), ingest_headers(emu.key))


def padded(size: int) -> dict[str, str]:
    """A JSON object whose compact serialization is exactly `size` bytes."""
    record = {"pad": ""}
    record["pad"] = "x" * (size - len(orjson.dumps(record)))
    assert len(orjson.dumps(record)) == size
    return record


def query_url(emu: TDEmulator, key: str) -> URL:
    encoded = urllib.parse.quote(key, safe="")
    return URL(f"{emu.url}{POSTBACK_PATH}?td_write_key={encoded}", encoded=True)


async def postback_outcomes(
    session: aiohttp.ClientSession, emu: TDEmulator, count: int
) -> list[int | str]:
    """Send `count` sequential postbacks {"i": n}; status or CONNECTION_ERROR each."""
    outcomes: list[int | str] = []
    for i in range(count):
        try:
            outcomes.append((await postback(session, emu, {"i": i})).status)
        except aiohttp.ClientConnectionError:
            outcomes.append(CONNECTION_ERROR)
    return outcomes


# --------------------------------------------------------------------------- postback


async def test_postback_success_and_stored_content(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    # U+2028, U+2029 and U+0085 arrive raw (JSON does not escape them) and end no line
    record = {"param1": "value1", "param2": 1234, "nested": {"a": [1, 2.5, None]}, "u": "é✓",
              "separators": "a\u2028b\u2029c\x85d"}
    reply = await postback(session, td_emulator, record)
    assert reply.status == 200
    assert reply.body == b"{}"
    assert reply.headers["Content-Type"].startswith("application/json")
    assert td_emulator.records() == [
        {"api": "postback", "database": "test_db", "table": "test_tbl", "record": record}
    ]
    stats = td_emulator.stats()
    assert stats["records_accepted"] == 1
    assert stats["requests_by_status"] == {"200": 1}


async def test_postback_auth_methods_and_header_precedence(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    emu = td_emulator
    body = orjson.dumps({"a": 1})
    json_ct = {"Content-Type": "application/json"}
    cases: list[tuple[URL | str, dict[str, str], int]] = [
        (query_url(emu, emu.key), json_ct, 200),
        (query_url(emu, emu.key), {**json_ct, "X-TD-Write-Key": WRONG_KEY}, 403),
        (query_url(emu, WRONG_KEY), {**json_ct, "X-TD-Write-Key": emu.key}, 200),
        (emu.url + POSTBACK_PATH, {**json_ct, "Authorization": f"TD1 {emu.key}"}, 200),
        (emu.url + POSTBACK_PATH, json_ct, 403),
        (query_url(emu, WRONG_KEY), json_ct, 403),
        # The raw (unencoded) key "a/b" survives as a query value; "+" would not.
        (query_url(emu, emu.key.replace("/", "+")), json_ct, 403),
    ]
    statuses = [(await post(session, url, body, headers)).status for url, headers, _ in cases]
    assert statuses == [expected for _, _, expected in cases]
    assert len(emu.records()) == 3
    assert emu.stats()["auth_methods"] == {"header": 2, "td1": 1, "query": 3, "none": 1}


async def test_ingest_auth_only_td1(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    emu = td_emulator
    body = orjson.dumps({"events": [{"a": 1}]})
    url = emu.url + INGEST_PATH
    base = {"Content-Type": INGEST_CT}
    assert (await post(session, url, body, ingest_headers(emu.key))).status == 200
    assert (await post(session, url, body, ingest_headers(WRONG_KEY))).status == 403
    assert (await post(session, url, body, base)).status == 403
    assert (await post(session, url, body, {**base, "X-TD-Write-Key": emu.key})).status == 403
    query_auth = URL(url).with_query(td_write_key=emu.key)
    assert (await post(session, query_auth, body, base)).status == 403
    assert len(emu.records()) == 1


@pytest.mark.parametrize(
    "database,table",
    [("ab", "test_tbl"), ("Test_db", "test_tbl"), ("test-db", "test_tbl"), ("test_db", "x" * 256)],
)
async def test_bad_names_are_400(
    td_emulator: TDEmulator, session: aiohttp.ClientSession, database: str, table: str
) -> None:
    for reply in (
        await postback(
            session, td_emulator, {"a": 1}, path=f"/postback/v3/event/{database}/{table}"
        ),
        await ingest(session, td_emulator, {"events": [{"a": 1}]}, path=f"/{database}/{table}"),
    ):
        assert reply.status == 400
        assert "error" in orjson.loads(reply.body)
    assert td_emulator.records() == []


async def test_postback_rejects_bad_bodies(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    emu = td_emulator
    url = emu.url + POSTBACK_PATH
    headers = {"Content-Type": "application/json", "X-TD-Write-Key": emu.key}
    bad_bodies = [
        b"[1, 2]",
        b'"text"',
        b"42",
        b"null",
        b"",
        b"{not json",
        b'{"a": "\xff"}',
        b"{} {}",
    ]
    for body in bad_bodies:
        reply = await post(session, url, body, headers)
        assert reply.status == 400, body
        assert reply.headers["Content-Type"].startswith("application/json")
        assert isinstance(orjson.loads(reply.body)["error"], str)
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        reply = await post(session, url, b'{"a": 1}', {**headers, "Content-Type": content_type})
        assert reply.status == 400
    assert emu.records() == []
    assert emu.stats()["requests_by_status"] == {"400": len(bad_bodies) + 2}


async def test_postback_size_limit(td_emulator: TDEmulator, session: aiohttp.ClientSession) -> None:
    at_limit = padded(POSTBACK_MAX_BODY)
    assert (await postback(session, td_emulator, at_limit)).status == 200
    reply = await postback(session, td_emulator, padded(POSTBACK_MAX_BODY + 1))
    assert reply.status == 413
    assert "error" in orjson.loads(reply.body)
    assert [r["record"] for r in td_emulator.records()] == [at_limit]


# --------------------------------------------------------------------------- ingest


async def test_ingest_receipts_and_event_count_limits(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    events = [{"i": i, "time": 1_700_000_000 + i} for i in range(500)]
    reply = await ingest(session, td_emulator, {"events": events})
    assert reply.status == 200
    assert orjson.loads(reply.body) == {"written_batches": [{"success": True}] * 500}
    assert (await ingest(session, td_emulator, {"events": [*events, {"i": 500}]})).status == 400
    assert (await ingest(session, td_emulator, {"events": []})).status == 400
    records = td_emulator.records(api="ingest")
    assert [r["record"] for r in records] == events
    assert {(r["database"], r["table"]) for r in records} == {("test_db", "test_tbl")}


async def test_ingest_rejects_bad_bodies(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    emu = td_emulator
    for payload in ({"events": [{"a": 1}, 2]}, {"events": {"a": 1}}, {"records": []}, [{"a": 1}]):
        assert (await ingest(session, emu, payload)).status == 400, payload
    url = emu.url + INGEST_PATH
    wrong_ct = {**ingest_headers(emu.key), "Content-Type": "application/json"}
    assert (await post(session, url, b'{"events": [{"a": 1}]}', wrong_ct)).status == 400
    assert (await post(session, url, b"{bad", ingest_headers(emu.key))).status == 400
    assert emu.records() == []


async def test_ingest_size_limits(td_emulator: TDEmulator, session: aiohttp.ClientSession) -> None:
    emu = td_emulator
    big_event = padded(INGEST_MAX_EVENT)
    assert (await ingest(session, emu, {"events": [big_event]})).status == 200
    assert (await ingest(session, emu, {"events": [padded(INGEST_MAX_EVENT + 1)]})).status == 413
    # {"events":[e1,e2,e3,e4,e5]} is 17 bytes of framing around the events.
    last = INGEST_MAX_BODY - 17 - 4 * INGEST_MAX_EVENT
    at_limit = {"events": [big_event] * 4 + [padded(last)]}
    assert len(orjson.dumps(at_limit)) == INGEST_MAX_BODY
    assert (await ingest(session, emu, at_limit)).status == 200
    over_limit = {"events": [big_event] * 4 + [padded(last + 1)]}
    reply = await ingest(session, emu, over_limit)
    assert reply.status == 413
    assert "error" in orjson.loads(reply.body)
    assert emu.stats()["records_accepted"] == 6


# --------------------------------------------------------------------------- faults


async def test_error_500_fraction_is_seeded_and_reproducible(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    emu = td_emulator
    emu.set_faults(error_500=0.3)
    first = await postback_outcomes(session, emu, 100)
    emu.set_faults(error_500=0.3)  # re-seeds the dice
    second = await postback_outcomes(session, emu, 100)
    assert first == second
    counts = Counter(first)
    assert set(counts) == {200, 500}
    assert 15 <= counts[500] <= 45
    stats = emu.stats()
    assert stats["faults"]["error_500"] == 2 * counts[500]
    assert stats["requests_by_status"] == {"200": 2 * counts[200], "500": 2 * counts[500]}
    assert len(emu.records()) == 2 * counts[200]


async def test_throttle_429_has_retry_after(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    emu = td_emulator
    emu.set_faults(throttle_429=0.25, retry_after=3)
    replies = [await postback(session, emu, {"i": i}) for i in range(80)]
    throttled = [r for r in replies if r.status == 429]
    assert 8 <= len(throttled) <= 35
    assert all(r.headers["Retry-After"] == "3" for r in throttled)
    assert all("Retry-After" not in r.headers for r in replies if r.status == 200)
    assert emu.stats()["faults"]["throttle_429"] == len(throttled)
    assert len(emu.records()) == 80 - len(throttled)


async def test_slow_responses(td_emulator: TDEmulator, session: aiohttp.ClientSession) -> None:
    emu = td_emulator
    delay = 0.2
    emu.set_faults(slow=0.4, slow_seconds=delay)
    elapsed: list[float] = []
    for i in range(12):
        started = time.perf_counter()
        assert (await postback(session, emu, {"i": i})).status == 200
        elapsed.append(time.perf_counter() - started)
    slowed = emu.stats()["faults"]["slow"]
    assert 1 <= slowed <= 11
    assert all(t >= delay for t in sorted(elapsed, reverse=True)[:slowed])
    assert len(emu.records()) == 12


async def test_reset_before_accept_stores_nothing(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    emu = td_emulator
    emu.set_faults(reset_before=0.5)
    outcomes = await postback_outcomes(session, emu, 40)
    failed = [i for i, o in enumerate(outcomes) if o == CONNECTION_ERROR]
    assert 8 <= len(failed) <= 32
    assert set(outcomes) == {200, CONNECTION_ERROR}
    stored = [r["record"]["i"] for r in emu.records()]
    assert stored == [i for i, o in enumerate(outcomes) if o == 200]
    stats = emu.stats()
    assert stats["faults"]["reset_before"] == len(failed) == stats["connections_aborted"]


async def test_reset_after_accept_stores_but_client_sees_error(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    emu = td_emulator
    emu.set_faults(reset_after=0.5)
    outcomes = await postback_outcomes(session, emu, 40)
    failed = [i for i, o in enumerate(outcomes) if o == CONNECTION_ERROR]
    assert 8 <= len(failed) <= 32
    assert [r["record"]["i"] for r in emu.records()] == list(range(40))
    stats = emu.stats()
    assert stats["faults"]["reset_after"] == len(failed)
    assert stats["records_accepted"] == 40
    assert stats["requests_by_status"] == {"200": 40 - len(failed)}

    emu.set_faults(reset_after=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await ingest(session, emu, {"events": [{"x": 1}, {"x": 2}]})
    assert [r["record"] for r in emu.records(api="ingest")] == [{"x": 1}, {"x": 2}]


async def test_force_status_and_invalid_fault_config(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    emu = td_emulator
    emu.set_faults(force_status=403)
    assert (await postback(session, emu, {"a": 1})).status == 403
    assert (await ingest(session, emu, {"events": [{"a": 1}]})).status == 403
    emu.set_faults(force_status=429, retry_after=0)
    assert (await postback(session, emu, {"a": 1})).headers["Retry-After"] == "0"
    assert emu.records() == []
    assert emu.stats()["faults"]["forced_status"] == 3
    for bad in ({"error_500": 1.5}, {"nope": 1}, {"force_status": 200}, {"retry_after": 0.5}):
        reply = await post(session, emu.url + "/_emulator/faults", orjson.dumps(bad))
        assert reply.status == 400, bad
    emu.set_faults()
    assert emu.faults()["force_status"] is None
    assert (await postback(session, emu, {"a": 1})).status == 200


async def test_faults_from_cli_flags(session: aiohttp.ClientSession) -> None:
    with run_td_emulator(keys=["k-one", "k-two"], seed=7, extra_args=["--error-500", "1"]) as emu:
        assert emu.faults()["error_500"] == 1
        assert emu.faults()["seed"] == 7
        assert (await postback(session, emu, {"a": 1}, key="k-two")).status == 500
        emu.set_faults()
        assert (await postback(session, emu, {"a": 1}, key="k-two")).status == 200


# --------------------------------------------------------------------------- control API


async def test_records_ndjson_filter_and_reset(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    emu = td_emulator
    await postback(session, emu, {"p": 1})
    await ingest(session, emu, {"events": [{"e": 1}, {"e": 2}]}, path="/other_db/other_tbl")
    async with session.get(emu.url + "/_emulator/records") as response:
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        lines = (await response.read()).decode().splitlines()
    assert [orjson.loads(line) for line in lines] == [
        {"api": "postback", "database": "test_db", "table": "test_tbl", "record": {"p": 1}},
        {"api": "ingest", "database": "other_db", "table": "other_tbl", "record": {"e": 1}},
        {"api": "ingest", "database": "other_db", "table": "other_tbl", "record": {"e": 2}},
    ]
    assert len(emu.records(database="other_db")) == 2
    assert emu.stats()["records_by_api"] == {"postback": 1, "ingest": 2}
    emu.reset()
    assert emu.records() == []
    assert emu.stats()["requests_total"] == 0


async def test_key_never_appears_in_responses_or_output(
    td_emulator: TDEmulator, session: aiohttp.ClientSession
) -> None:
    emu = td_emulator
    secrets = [emu.key, urllib.parse.quote(emu.key, safe=""), WRONG_KEY]
    seen: list[bytes] = []

    def remember(reply: Reply) -> None:
        seen.append(reply.body)
        seen.append(repr(reply.headers).encode())

    body = orjson.dumps({"a": 1})
    json_ct = {"Content-Type": "application/json"}
    for key in (emu.key, WRONG_KEY):
        remember(await post(session, query_url(emu, key), body, json_ct))
        remember(await post(session, query_url(emu, key), b"[bad", json_ct))
        remember(await postback(session, emu, {"a": 1}, key=key))
        remember(await post(session, emu.url + INGEST_PATH, body, ingest_headers(key)))
        remember(await post(session, query_url(emu, key).with_path("/nope"), body, json_ct))
    for faults in ({"error_500": 1}, {"throttle_429": 1}, {"force_status": 403}):
        emu.set_faults(**faults)
        remember(await post(session, query_url(emu, emu.key), body, json_ct))
    emu.set_faults(reset_after=1)
    assert await postback_outcomes(session, emu, 1) == [CONNECTION_ERROR]
    for path in ("/_emulator/records", "/_emulator/stats", "/_emulator/faults"):
        async with session.get(emu.url + path) as response:
            seen.append(await response.read())
    emu.stop()
    seen.append(emu.output().encode())
    everything = b"\n".join(seen)
    assert b"READY" in everything
    for secret in secrets:
        assert secret.encode() not in everything
