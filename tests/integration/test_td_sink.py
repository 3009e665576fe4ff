"""file -> td: `streamer run` as a subprocess against the TD emulator (tests/emulators/td.py)."""

from __future__ import annotations

import signal
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.gen import iter_records
from tests.fixtures.td import TDEmulator
from tests.helpers import (
    TD_RETRY,
    Daemon,
    Finished,
    base_config,
    file_source,
    multiset,
    read_dead_letters,
    run_cli,
    stored,
    td_sink,
    wait_until,
    write_config,
    write_ndjson,
)

WRONG_KEY = "wrong-key/zzz-4242"


def td_config(tmp_path: Path, emu: TDEmulator, *, api: str = "postback", sink: str = "",
              shutdown_timeout_s: float = 30, follow: bool = False,
              database: str = "test_db", table: str = "events", name: str = "streamer.toml",
              timeout_s: float = 5, retry: Mapping[str, float] = TD_RETRY) -> Path:
    return write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None,
                                              shutdown_timeout_s=shutdown_timeout_s)
                        + file_source(tmp_path / "in.ndjson", follow=follow)
                        + td_sink(emu.url, api=api, timeout_s=timeout_s, retry=retry,
                                  database=database, table=table, extra=sink), name=name)


def run_td(config: Path, key: str, *extra: str, timeout: float = 300) -> Finished:
    return run_cli("run", "-c", str(config), *extra, env={"TD_WRITE_KEY": key},
                   timeout=timeout)


def make_input(tmp_path: Path, n: int, seed: int = 1, **extra: Any) -> list[dict[str, Any]]:
    records = [{**r, **extra, "seq": i} for i, r in enumerate(iter_records(n, seed))]
    write_ndjson(tmp_path / "in.ndjson", records)
    return records


def assert_key_nowhere(key: str, tmp_path: Path, *texts: str) -> None:
    forms = {key, urllib.parse.quote(key, safe=""), urllib.parse.quote(key)}
    for text in texts:
        for form in forms:
            assert form not in text
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for form in forms:
                assert form.encode() not in content, f"key found in {path}"


def sink_summary(result: Finished) -> dict[str, Any]:
    assert result.code == 0, result.stderr[-3000:]
    return result.summary["sinks"]["td"]


@pytest.mark.parametrize("api", ["postback", "ingest"])
# bounds on a loaded host: at load ~20 the postback run took over 300 s, and an ingest
# request answered after the client's 5 s was sent again (stored twice: "exactly" fails)
@pytest.mark.timeout(900)
def test_100k_records_arrive_exactly(tmp_path: Path, td_emulator: TDEmulator, api: str) -> None:
    records = make_input(tmp_path, 100_000)
    result = run_td(td_config(tmp_path, td_emulator, api=api, timeout_s=60), td_emulator.key,
                    timeout=800)
    summary = sink_summary(result)
    assert summary["delivered"] == summary["received"] == 100_000
    assert summary["dead_lettered"] == summary["in_flight"] == 0
    got = stored(td_emulator, api=api, database="test_db", table="events")
    assert multiset(got) == multiset(records)
    stats = td_emulator.stats()
    expected_auth = "header" if api == "postback" else "td1"
    assert stats["auth_methods"][expected_auth] == stats["requests_total"]
    if api == "ingest":
        assert stats["requests_total"] == summary["requests_2xx"] == 200  # 500 per request
    assert read_dead_letters(tmp_path / "data", "td") == []
    assert_key_nowhere(td_emulator.key, tmp_path, result.stdout, result.stderr)


@pytest.mark.parametrize(("api", "auth"), [("postback", "query"), ("ingest", "header")])
@pytest.mark.timeout(900)  # a hang guard: 194 s of 300 at load ~20
def test_30_percent_faults_deliver_everything(tmp_path: Path, td_emulator: TDEmulator,
                                              api: str, auth: str) -> None:
    n = 20_000 if api == "postback" else 10_000
    records = make_input(tmp_path, n, seed=2)
    td_emulator.set_faults(error_500=0.06, throttle_429=0.06, retry_after=0, slow=0.06,
                           slow_seconds=0.2, reset_before=0.06, reset_after=0.06)
    # ingest: 50-record batches, so that the faults hit hundreds of requests
    sink = f'auth = "{auth}"\n' + ("batch = { max_records = 50 }\n" if api == "ingest" else "")
    result = run_td(td_config(tmp_path, td_emulator, api=api, sink=sink), td_emulator.key,
                    "--log-level", "debug")
    summary = sink_summary(result)
    stats = td_emulator.stats()
    faults = stats["faults"]
    assert all(faults[kind] > 0 for kind in
               ("error_500", "throttle_429", "slow", "reset_before", "reset_after"))
    assert summary["received"] == n
    assert summary["delivered"] + summary["dead_lettered"] == summary["received"]
    assert summary["dead_lettered"] == summary["in_flight"] == 0
    got = stored(td_emulator)
    counts, expected = multiset(got), multiset(records)
    assert set(counts) == set(expected)  # every record at least once, nothing else
    duplicates = sum(counts.values()) - n
    # a duplicate only comes from a stored request whose answer was lost (reset_after)
    if api == "postback":
        assert duplicates == faults["reset_after"]
        assert stats["auth_methods"]["query"] == stats["records_accepted"]
    else:
        assert 0 < duplicates <= 50 * faults["reset_after"]
    # the summary agrees with the emulator, request by request
    by_status = stats["requests_by_status"]
    assert summary["requests_2xx"] == by_status["200"]
    assert summary["requests_5xx"] == by_status["500"] == faults["error_500"]
    assert summary["requests_4xx"] == by_status["429"] == faults["throttle_429"]
    # an abort on a kept-alive connection before any byte of an answer looks like the
    # server's keep-alive timeout racing the request: sent again at once, not an error
    assert summary["requests_error"] + summary["requests_resent"] == stats["connections_aborted"]
    assert read_dead_letters(tmp_path / "data", "td") == []
    assert_key_nowhere(td_emulator.key, tmp_path, result.stdout, result.stderr)


@pytest.mark.parametrize(("api", "key", "force_status"), [
    ("postback", WRONG_KEY, None), ("ingest", WRONG_KEY, None),
    ("postback", None, 400), ("ingest", None, 413)])
def test_rejected_records_are_dead_lettered(tmp_path: Path, td_emulator: TDEmulator, api: str,
                                            key: str | None, force_status: int | None) -> None:
    records = make_input(tmp_path, 1200)
    if force_status is not None:
        td_emulator.set_faults(force_status=force_status)
    result = run_td(td_config(tmp_path, td_emulator, api=api), key or td_emulator.key)
    # rejected records do not fail the run; a refused key (403) does: exit 1
    assert result.code == (1 if key else 0), result.stderr[-3000:]
    summary = result.summary["sinks"]["td"]
    assert summary["dead_lettered"] == summary["received"] == 1200
    assert summary["delivered"] == summary["in_flight"] == 0
    assert td_emulator.records() == []
    status = force_status or 403
    letters = read_dead_letters(tmp_path / "data", "td")
    assert multiset(orjson.loads(d["raw"]) for d in letters) == multiset(records)
    for letter in letters:
        assert letter["status"] == status
        assert letter["reason"].startswith(f"HTTP {status}: ")
        assert (letter["component"], letter["api"], letter["database"], letter["table"]) == \
            ("td", api, "test_db", "events")
        assert letter["origin"] == str(tmp_path / "in.ndjson")
    assert "dead-lettered" in result.stderr
    assert_key_nowhere(td_emulator.key, tmp_path, result.stdout, result.stderr)
    assert_key_nowhere(WRONG_KEY, tmp_path, result.stdout, result.stderr)


@pytest.mark.parametrize("status", [301, 307])
def test_a_redirect_is_not_followed_and_says_so(tmp_path: Path, td_emulator: TDEmulator,
                                                status: int) -> None:
    """A 3xx is final: dead letters whose reason names the redirect and its
    Location host, never the key the Location echoes in its query."""
    records = make_input(tmp_path, 50)
    td_emulator.set_faults(force_status=status)
    config = td_config(tmp_path, td_emulator, sink='auth = "query"')
    result = run_td(config, td_emulator.key)
    # the endpoint is not where the config says: exit 1 (test_td_not_found.py)
    assert result.code == 1, result.stderr[-3000:]
    assert result.summary["sinks"]["td"]["dead_lettered"] == 50
    letters = read_dead_letters(tmp_path / "data", "td")
    assert multiset(orjson.loads(d["raw"]) for d in letters) == multiset(records)
    assert {d["reason"] for d in letters} == {
        f"HTTP {status}: a redirect, which is not followed (Location host: "
        f'redirect.example); {{"error":"forced status"}}'}
    assert_key_nowhere(td_emulator.key, tmp_path, result.stdout, result.stderr,
                       (tmp_path / "data" / "dead_letter" / "td.ndjson").read_text())


@pytest.mark.parametrize("api", ["postback", "ingest"])
def test_table_field_routes_and_rejects_invalid_names(tmp_path: Path, td_emulator: TDEmulator,
                                                      api: str) -> None:
    names: list[Any] = ["clicks", "views_2", None, "Bad-Name", "ab", 42, "x" * 256]
    records = [{**r, "seq": i, "tbl": names[i % len(names)]}
               for i, r in enumerate(iter_records(1400, 3))]
    for record in records[::100]:
        del record["tbl"]  # no field: the configured table
    write_ndjson(tmp_path / "in.ndjson", records)
    result = run_td(td_config(tmp_path, td_emulator, api=api, sink='table_field = "tbl"'),
                    td_emulator.key)
    summary = sink_summary(result)

    def table_of(record: dict[str, Any]) -> Any:
        return record.get("tbl") or "events"

    valid = [r for r in records if table_of(r) in ("clicks", "views_2", "events")]
    invalid = [r for r in records if r not in valid]
    for table in ("clicks", "views_2", "events"):
        assert multiset(stored(td_emulator, table=table)) == \
            multiset(r for r in valid if table_of(r) == table)
    assert summary["delivered"] == len(valid)
    assert summary["dead_lettered"] == len(invalid) > 700
    letters = read_dead_letters(tmp_path / "data", "td")
    assert multiset(orjson.loads(d["raw"]) for d in letters) == multiset(invalid)
    assert all(d["reason"].startswith("invalid table name in field 'tbl'") for d in letters)
    assert all("status" not in d and "table" not in d for d in letters)


def test_one_429_pauses_every_request(tmp_path: Path, td_emulator: TDEmulator) -> None:
    """With seed 0 and p = 0.001 the emulator answers exactly requests #697 and #1061
    with 429 + Retry-After: 1 (its dice are per request, in arrival order).  If
    the pause were per request, the other 7 workers would go on posting during
    that second (thousands of records) and the throttled record would land far
    behind its neighbours; with the shared gate it lands among them."""
    concurrency = 8
    records = make_input(tmp_path, 1500)
    td_emulator.set_faults(throttle_429=0.001, retry_after=1, seed=0)
    result = run_td(td_config(tmp_path, td_emulator, sink=f"concurrency = {concurrency}"),
                    td_emulator.key)
    summary = sink_summary(result)
    stats = td_emulator.stats()
    assert stats["requests_by_status"]["429"] == summary["requests_4xx"] == 2
    assert summary["backoff_ms"] >= 1990  # two pauses of Retry-After = 1 s
    got = stored(td_emulator)
    assert multiset(got) == multiset(records)
    # acceptance order vs. the order the workers take records in (the file order)
    lateness = max(position - record["seq"] for position, record in enumerate(got))
    assert lateness <= 3 * concurrency


def test_timeouts_are_retried(tmp_path: Path, td_emulator: TDEmulator) -> None:
    records = make_input(tmp_path, 400)
    td_emulator.set_faults(slow=0.2, slow_seconds=1.0)
    result = run_td(td_config(tmp_path, td_emulator, sink="concurrency = 16", timeout_s=0.3),
                    td_emulator.key)
    summary = sink_summary(result)
    assert summary["delivered"] == 400 and summary["requests_error"] > 0
    # a timed-out request may still be stored by the server: at least once
    assert set(multiset(stored(td_emulator))) == set(multiset(records))


def test_max_elapsed_dead_letters_with_reason(tmp_path: Path, td_emulator: TDEmulator) -> None:
    records = make_input(tmp_path, 300)
    td_emulator.set_faults(force_status=503)
    retry = {"initial_backoff_ms": 5, "max_backoff_ms": 50, "max_elapsed_s": 0.5}
    result = run_td(td_config(tmp_path, td_emulator, api="ingest", retry=retry),
                    td_emulator.key)
    summary = sink_summary(result)
    assert summary["dead_lettered"] == 300 and summary["delivered"] == 0
    letters = read_dead_letters(tmp_path / "data", "td")
    assert multiset(orjson.loads(d["raw"]) for d in letters) == multiset(records)
    assert all(d["status"] == 503 and "gave up after" in d["reason"]
               and "max_elapsed_s" in d["reason"] for d in letters)


def test_drain_retries_until_delivered(tmp_path: Path, td_emulator: TDEmulator) -> None:
    """SIGTERM while the destination fails: the drain keeps retrying (max_elapsed_s = 0)
    and delivers everything once the destination is back; exit 0."""
    records = make_input(tmp_path, 500)
    td_emulator.set_faults(force_status=503)
    config = td_config(tmp_path, td_emulator, follow=True)
    daemon = Daemon(config, tmp_path / "daemon.log", env={"TD_WRITE_KEY": td_emulator.key})
    try:
        wait_until(lambda: td_emulator.stats()["requests_total"] >= 20, what="503s")
        daemon.signal(signal.SIGTERM)
        wait_until(lambda: "draining" in daemon.log, what="drain start")
        before = td_emulator.stats()["requests_total"]
        wait_until(lambda: td_emulator.stats()["requests_total"] > before + 20,
                   what="retries during the drain")
        td_emulator.set_faults()
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
    assert multiset(stored(td_emulator)) == multiset(records)
    assert_key_nowhere(td_emulator.key, tmp_path, daemon.log)


def test_forced_stop_loses_nothing(tmp_path: Path, td_emulator: TDEmulator) -> None:
    """The shutdown deadline cancels retries; undelivered batches are not
    acknowledged, so the next run reads them again from the checkpoint."""
    records = make_input(tmp_path, 600)
    td_emulator.set_faults(force_status=500)
    config = td_config(tmp_path, td_emulator, shutdown_timeout_s=0.5,
                       sink="batch = { max_records = 100 }", follow=True)
    daemon = Daemon(config, tmp_path / "daemon.log", env={"TD_WRITE_KEY": td_emulator.key})
    try:
        wait_until(lambda: td_emulator.stats()["requests_total"] >= 50, what="500s")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 1  # forced by the deadline
    finally:
        daemon.stop()
    assert td_emulator.records() == []
    td_emulator.set_faults()
    config.write_text(config.read_text().replace("follow = true", "follow = false"))
    result = run_td(config, td_emulator.key)
    assert sink_summary(result)["delivered"] == 600
    assert multiset(stored(td_emulator)) == multiset(records)


def test_check_hides_the_key_and_refuses_bad_names(tmp_path: Path,
                                                   td_emulator: TDEmulator) -> None:
    make_input(tmp_path, 1)
    config = td_config(tmp_path, td_emulator)
    result = run_cli("check", "-c", str(config), env={"TD_WRITE_KEY": td_emulator.key})
    assert result.code == 0, result.stderr
    assert "api=postback" in result.stdout and "write_key: set (hidden)" in result.stdout
    assert_key_nowhere(td_emulator.key, tmp_path, result.stdout, result.stderr)
    for key, bad in (("database", "Test-DB"), ("table", "ev"), ("table", "x" * 256)):
        names = {"database": "test_db", "table": "events", key: bad}
        bad_config = td_config(tmp_path, td_emulator, name=f"bad_{key}_{len(bad)}.toml",
                               **names)
        result = run_cli("check", "-c", str(bad_config), env={"TD_WRITE_KEY": td_emulator.key})
        assert result.code == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"sinks.td.{key}: "), lines
        assert_key_nowhere(td_emulator.key, tmp_path, result.stdout, result.stderr)


def test_ingest_dead_letters_a_record_over_1_mb(tmp_path: Path, td_emulator: TDEmulator) -> None:
    small = [{"seq": i, "msg": "ok"} for i in range(3)]
    big = {"seq": 99, "blob": "z" * 1_000_050}
    write_ndjson(tmp_path / "in.ndjson", [small[0], big, small[1], small[2]])
    result = run_td(td_config(tmp_path, td_emulator, api="ingest"), td_emulator.key)
    summary = sink_summary(result)
    assert (summary["delivered"], summary["dead_lettered"]) == (3, 1)
    assert multiset(stored(td_emulator)) == multiset(small)
    [letter] = read_dead_letters(tmp_path / "data", "td")
    assert orjson.loads(letter["raw"]) == big and letter["table"] == "events"
    assert letter["reason"].startswith("record of 1000070 bytes exceeds")
    assert "status" not in letter


def test_ingest_splits_a_request_the_endpoint_finds_too_large(tmp_path: Path,
                                                              td_emulator: TDEmulator) -> None:
    """A 413 for a request of several records says the request is too large for this
    endpoint (a gateway's lower limit), not that its records are bad: it is sent again
    as two halves until each fits; only a record too large on its own is dead-lettered
    (before 2026-12-04 all 500 records of the request were)."""
    records = [{"seq": i, "msg": "m" * 1500} for i in range(1200)]
    big = {"seq": 5000, "blob": "z" * 60_000}
    write_ndjson(tmp_path / "in.ndjson", [*records[:700], big, *records[700:]])
    td_emulator.set_faults(max_body=50_000)  # about 30 records a request
    result = run_td(td_config(tmp_path, td_emulator, api="ingest"), td_emulator.key)
    summary = sink_summary(result)
    assert (summary["delivered"], summary["dead_lettered"]) == (1200, 1)
    assert multiset(stored(td_emulator)) == multiset(records)
    [letter] = read_dead_letters(tmp_path / "data", "td")
    assert orjson.loads(letter["raw"]) == big and letter["status"] == 413
    assert td_emulator.stats()["requests_by_status"].get("413", 0) > 0
