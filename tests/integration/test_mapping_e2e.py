"""Column mappings end to end, `streamer run` as a subprocess on real servers:
nested NDJSON with ISO 8601 times -> S3 stage (moto) -> Timestream batch load (our
emulator), -> local stage -> DuckDB, and -> Treasure Data (our emulator) with
`time`; values that do not convert are dead-lettered with the column and the
reason while the rest loads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from tests.fixtures.batchload import BatchLoadEmulator
from tests.fixtures.moto_s3 import MotoServer
from tests.fixtures.td import TDEmulator
from tests.helpers import (
    base_config,
    file_source,
    run_cli,
    toml_keys,
    toml_value,
    write_config,
    write_ndjson,
)

pytestmark = pytest.mark.timeout(120)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)),
         timezone(timedelta(hours=14)), timezone(timedelta(hours=-9, minutes=-30))]
STARTS = [datetime(2024, 2, 29, 23, 0, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, tzinfo=UTC),
          datetime(2000, 2, 29, tzinfo=UTC), datetime(2100, 2, 28, 23, tzinfo=UTC)]


def moment(i: int) -> datetime:
    """Record i's time, to the fraction digits its text holds (0, 3 or 6)."""
    at = STARTS[i % 4] + timedelta(seconds=i * 61, microseconds=(i * 7919) % 1_000_000)
    return at.replace(microsecond=(0, at.microsecond // 1000 * 1000, at.microsecond)[i % 3])


def iso(i: int) -> str:
    """The moment in one of five zones, as 'Z', an offset, or none (UTC)."""
    local = moment(i).astimezone(ZONES[i % 5])
    digits = ("seconds", "milliseconds", "microseconds")[i % 3]
    text = local.isoformat(timespec=digits)
    if i % 5 == 0:
        text = text.replace("+00:00", "Z" if i % 2 else "")
    return text


def nested(n: int) -> list[dict[str, Any]]:
    return [{"event": {"time": iso(i), "kind": f"k{i % 3}"},
             "user": {"id": i, "name": f"user {i % 7}"},
             "metrics": {"latency": i / 4, "ok": i % 2 == 0},
             "tags": ["a", f"t{i % 5}"], "host": f"h{i % 2}"} for i in range(n)]


def floor_ms(i: int) -> int:
    return (moment(i) - EPOCH) // timedelta(milliseconds=1)


def dead_letters(tmp_path: Path, sink: str) -> list[dict[str, Any]]:
    path = tmp_path / "data" / "dead_letter" / f"{sink}.ndjson"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


BAD = [({"user": {"id": "n/a"}}, "column user_id: not an integer"),
       ({"event": {"time": "2023-02-29T10:00:00Z", "kind": "x"}},
        "column time: not a valid date or time"),
       ({"metrics": "down"}, "column latency: path through a non-object at metrics")]


def with_bad(records: list[dict[str, Any]], every: int) -> tuple[list[dict[str, Any]], dict]:
    """Every `every`-th record spoiled (one of BAD): the input, and {index: reason}."""
    out, bad = [], {}
    for i, record in enumerate(records):
        if i % every == every - 1:
            spoil, reason = BAD[(i // every) % len(BAD)]
            record = {**record, **spoil}
            bad[i] = reason
        out.append(record)
    return out, bad


STAGE_COLUMNS = [
    {"name": "time", "from": "event.time", "type": "timestamp", "format": "epoch_ms"},
    {"name": "user_id", "from": "user.id", "type": "integer"},
    "host",
    {"name": "kind", "from": "event.kind"},
    {"name": "latency", "from": "metrics.latency", "type": "double"},
    {"name": "ok", "from": "metrics.ok", "type": "boolean"},
    {"name": "tag", "from": "tags[1]"},
]


def test_nested_records_reach_timestream_with_exact_times(
        tmp_path: Path, moto_s3: MotoServer, s3_bucket: str,
        batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    emu.register_table("tsdb", "events")
    emu.configure(task_delay=0.05)
    records, bad = with_bad(nested(3000), every=97)
    write_ndjson(tmp_path / "in.ndjson", records)
    load = toml_keys(type="timestream", endpoint_url=emu.endpoint_url, database="tsdb",
                     table="events", time_column="time", time_unit="MILLISECONDS",
                     dimensions={"host": "host", "kind": "kind", "tag": "tag"},
                     measure_name="m", poll_initial_s=0.2, poll_max_s=1.0)
    # measure types come from the mapping
    load += "measures = " + toml_value([{"source": "user_id"}, {"source": "latency"},
                                        {"source": "ok"}]) + "\n"
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                          + file_source(tmp_path / "in.ndjson", name="f", follow=False)
                          + "[sinks.st]\n"
                          + toml_keys(type="stage", url=f"s3://{s3_bucket}/stage/",
                                      columns=STAGE_COLUMNS, batch={"max_records": 1000})
                          + "[sinks.st.s3]\n"
                          + toml_keys(endpoint_url=moto_s3.endpoint_url, region="us-east-1")
                          + "[sinks.st.load]\n" + load)

    done = run_cli("run", "-c", str(config), env=moto_s3.aws_env())

    assert done.code == 0, done.stderr[-3000:]
    rows = sorted((r["time_ns"], sorted(r["dimensions"].items()), sorted(r["measures"].items()))
                  for r in emu.rows("tsdb", "events"))
    want = sorted((floor_ms(i) * 10**6,
                   sorted({"host": r["host"], "kind": r["event"]["kind"],
                           "tag": r["tags"][1]}.items()),
                   sorted({"user_id": r["user"]["id"], "latency": r["metrics"]["latency"],
                           "ok": r["metrics"]["ok"]}.items()))
                  for i, r in enumerate(records) if i not in bad)
    assert rows == want
    letters = dead_letters(tmp_path, "st")
    assert [(orjson.loads(d["raw"]), d["reason"]) for d in letters] == \
        [(records[i], reason) for i, reason in bad.items()]
    assert all(d["origin"] == str(tmp_path / "in.ndjson") and d["source"] == "f"
               and d["component"] == "st" for d in letters)
    sink = done.summary["sinks"]["st"]
    assert sink["dead_lettered"] == len(bad) and sink["delivered"] == 3000 - len(bad)
    assert sink["rows_loaded"] == 3000 - len(bad)


def test_nested_records_load_into_duckdb_typed(tmp_path: Path) -> None:
    records, bad = with_bad(nested(2000), every=250)
    write_ndjson(tmp_path / "in.ndjson", records)
    columns = [
        {"name": "at", "from": "event.time", "type": "timestamp"},
        {"name": "at_ns", "from": "event.time", "type": "timestamp", "format": "epoch_ns"},
        {"name": "user_id", "from": "user.id", "type": "integer"},
        {"name": "latency", "from": "metrics.latency", "type": "double"},
        {"name": "ok", "from": "metrics.ok", "type": "boolean"},
        {"name": "tags", "type": "json"},
        {"name": "name", "from": "user.name"},
        {"name": "kind", "from": "event.kind", "default": "none"},
        {"name": "source", "value": "${SOURCE_NAME}"},
    ]
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                          + file_source(tmp_path / "in.ndjson", name="f", follow=False)
                          + "[sinks.st]\n"
                          + toml_keys(type="stage", url=f"file://{tmp_path}/stage/",
                                      columns=columns, fsync=False)
                          + "[sinks.st.load]\n" + toml_keys(type="duckdb", table="events"))
    checked = run_cli("check", "-c", str(config), env={"SOURCE_NAME": "loader-1"})
    assert checked.code == 0, checked.stderr

    done = run_cli("run", "-c", str(config), env={"SOURCE_NAME": "loader-1"})

    assert done.code == 0, done.stderr[-3000:]
    con = duckdb.connect(str(tmp_path / "data" / "streamer.duckdb"), read_only=True)
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'events'").fetchall())
    assert types == {"at": "TIMESTAMP WITH TIME ZONE", "at_ns": "BIGINT", "user_id": "BIGINT",
                     "latency": "DOUBLE", "ok": "BOOLEAN", "tags": "JSON", "name": "VARCHAR",
                     "kind": "VARCHAR", "source": "VARCHAR"}
    got = con.execute('SELECT epoch_us("at"), at_ns, user_id, latency, ok, tags, kind, source '
                      'FROM events ORDER BY user_id').fetchall()
    ids = [i for i in range(2000) if i not in bad]
    want = [((moment(i) - EPOCH) // timedelta(microseconds=1),
             (moment(i) - EPOCH) // timedelta(microseconds=1) * 1000, i, i / 4, i % 2 == 0,
             f'["a","t{i % 5}"]', f"k{i % 3}", "loader-1") for i in ids]
    assert got == want
    assert {d["reason"] for d in dead_letters(tmp_path, "st")} == {
        reason.replace("column time:", "column at:") for reason in bad.values()}


def test_td_records_are_shaped_with_time(tmp_path: Path, td_emulator: TDEmulator) -> None:
    records, bad = with_bad(nested(400), every=50)
    write_ndjson(tmp_path / "in.ndjson", records)
    mapping = [
        {"name": "time", "from": "event.time", "type": "timestamp", "format": "epoch_s"},
        {"name": "user_id", "from": "user.id", "type": "integer"},
        {"name": "latency", "from": "metrics.latency", "type": "double"},
        {"name": "tags", "type": "json"},
    ]
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                          + file_source(tmp_path / "in.ndjson", name="f", follow=False)
                          + "[sinks.td]\n"
                          + toml_keys(type="td", api="ingest", endpoint=td_emulator.url,
                                      database="test_db", table="events",
                                      write_key="${TD_WRITE_KEY}", mapping=mapping))

    done = run_cli("run", "-c", str(config), env={"TD_WRITE_KEY": td_emulator.key})

    assert done.code == 0, done.stderr[-3000:]
    stored = td_emulator.records(database="test_db", table="events")
    assert all(set(s["record"]) == {"time", "user_id", "latency", "tags"} for s in stored)
    got = sorted((s["record"] for s in stored), key=lambda r: r["user_id"])
    want = [{"time": (moment(i) - EPOCH) // timedelta(seconds=1), "user_id": i,
             "latency": i / 4, "tags": ["a", f"t{i % 5}"]}
            for i in range(400) if i not in bad]
    assert got == want
    letters = dead_letters(tmp_path, "td")
    assert [d["reason"] for d in letters] == list(bad.values())
    assert [orjson.loads(d["raw"]) for d in letters] == [records[i] for i in bad]


def test_streamer_columns_prints_a_block_that_check_takes(tmp_path: Path) -> None:
    write_ndjson(tmp_path / "in.ndjson", nested(50))
    with (tmp_path / "in.ndjson").open("ab") as out:
        out.write(b"not json\n")

    printed = run_cli("columns", str(tmp_path / "in.ndjson"), "--sample", "20")

    assert printed.code == 0, printed.stderr
    assert "1 line(s) of the sample are not JSON objects" not in printed.stderr  # past 20
    block = printed.stdout
    assert '{ name = "event_time", from = "event.time", type = "timestamp", ' \
           'parse = "iso8601" }' in block
    assert '{ name = "metrics_latency", from = "metrics.latency", type = "double" }' in block
    assert '{ name = "tags", from = "tags", type = "json" }' in block
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                          + file_source(tmp_path / "in.ndjson", name="f", follow=False)
                          + "[sinks.st]\n"
                          + toml_keys(type="stage", url=f"file://{tmp_path}/stage/")
                          + block + "\n")
    assert run_cli("check", "-c", str(config)).code == 0
    missing = run_cli("columns", str(tmp_path / "nope.ndjson"))
    assert missing.code == 2 and "nope.ndjson" in missing.stderr
