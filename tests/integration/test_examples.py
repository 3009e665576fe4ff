"""Each config of config/examples/: `streamer check` takes it, and it runs end to end
against the test servers (endpoints through its ${VAR}s), delivering the records."""

from __future__ import annotations

import gzip
import io
import json
import socket
import struct
from pathlib import Path

import duckdb
import pytest

from tests.fixtures.batchload import BatchLoadEmulator
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.moto_s3 import MotoServer
from tests.fixtures.processes import free_port
from tests.fixtures.td import TDEmulator
from tests.helpers.api import scrape
from tests.helpers.process import Daemon, run_cli, stop
from tests.helpers.waiting import wait_for_log, wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
DATA_SET = "0123456789abcdef0123456789abcdef"
DUMMY_ENV = {"TD_WRITE_KEY": "dummy-key", "TD_DATABASE": "app_db", "TD_TABLE": "events",
             "STAGE_BUCKET": "dummy-bucket", "DATA_SET_ID": DATA_SET}


def test_the_examples_cover_every_job() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.toml")) == [
        "files-s3-dataexchange.toml", "kafka-s3-timestream.toml", "socket-to-td-ingest.toml",
        "stdin-oneshot.toml", "tail-to-duckdb.toml", "td-postback-routing.toml"]


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_check_takes_every_example(example: str, tmp_path: Path) -> None:
    text = (EXAMPLES / example).read_text()
    assert "write_key = \"${TD_WRITE_KEY}\"" in text or "write_key" not in text
    done = run_cli("check", "-c", str(EXAMPLES / example),
                   env={**DUMMY_ENV, "STREAMER_DATA_DIR": str(tmp_path / "data")})
    assert done.code == 0, done.stderr
    assert done.stdout.startswith(f"config OK: {EXAMPLES / example}")
    assert "dummy-key" not in done.stdout + done.stderr
    # what an example writes goes under STREAMER_DATA_DIR: two loads with their own
    # data_dir never share a DuckDB file (stdin-oneshot's went to /tmp before 2026-12-05)
    for line in done.stdout.splitlines():
        if line.strip().startswith("load: duckdb "):
            assert line.split()[2].startswith(f"{tmp_path / 'data'}/"), line


def read_all(daemon: Daemon, port: int, source: str, count: int) -> None:
    """Wait until `source` has read `count` records (its counter in /metrics)."""
    def done() -> bool:
        return any(name.startswith("streamer_source_records") and ("source", source) in labels
                   and value >= count for (name, labels), value in scrape(port).items())
    wait_until(done, timeout=120, what=f"{count} records read by {source}")


def duckdb_rows(path: Path, query: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(query).fetchall()


def test_stdin_oneshot(tmp_path: Path) -> None:
    records = [{"time": 1700000000 + i, "user_id": i, "event": f"e{i % 4}", "amount": i / 4}
               for i in range(300)]
    stdin = "".join(json.dumps(r) + "\n" for r in records).encode() + b"not json\n"
    database = tmp_path / "events.duckdb"
    done = run_cli("run", "-c", str(EXAMPLES / "stdin-oneshot.toml"), stdin=stdin, env={
        "STREAMER_DATA_DIR": str(tmp_path / "data"), "DUCKDB_PATH": str(database)})
    assert done.code == 0, done.stderr[-3000:]
    assert done.summary["sources"]["input"]["rejected"] == 1
    rows = duckdb_rows(database, "SELECT time, user_id, event, amount FROM events ORDER BY time")
    assert rows == [(r["time"], r["user_id"], r["event"], r["amount"]) for r in records]


def test_tail_to_duckdb(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    records = [{"time": 1700000000 + i, "host": f"h{i % 3}", "service": "api", "level": "info",
                "status": 200 + i % 5, "latency_ms": i / 10, "message": f"m,\"{i}\""}
               for i in range(200)]
    (logs / "app.ndjson").write_text("".join(json.dumps(r) + "\n" for r in records))
    port = free_port()
    data = tmp_path / "data"
    config = tmp_path / "tail.toml"
    config.write_text((EXAMPLES / "tail-to-duckdb.toml").read_text())
    daemon = Daemon(config, tmp_path / "daemon.log", env={
        "STREAMER_DATA_DIR": str(data), "LOG_PATHS": f"{logs}/*.ndjson",
        "STREAMER_API": f"127.0.0.1:{port}"})
    try:
        read_all(daemon, port, "logs", len(records))
        stop(daemon)
    finally:
        daemon.stop()
    rows = duckdb_rows(data / "streamer.duckdb", "SELECT time, host, service, level, status, "
                       "latency_ms, message FROM app_logs ORDER BY time")
    assert rows == [tuple(r.values()) for r in records]


def test_socket_with_acks_to_td_ingest(td_emulator: TDEmulator, tmp_path: Path) -> None:
    port, api = free_port(), free_port()
    daemon = Daemon(EXAMPLES / "socket-to-td-ingest.toml", tmp_path / "daemon.log", env={
        "STREAMER_DATA_DIR": str(tmp_path / "data"), "STREAMER_API": f"127.0.0.1:{api}",
        "LISTEN": f"127.0.0.1:{port}", "TD_ENDPOINT": td_emulator.url,
        "TD_DATABASE": "app_db", "TD_TABLE": "events", "TD_WRITE_KEY": td_emulator.key})
    records = [{"time": 1700000000 + i, "n": i, "text": "é" * (i % 7)} for i in range(120)]
    try:
        wait_until(lambda: scrape(api), timeout=120, what="the daemon's API")
        # the API listens before the sources start: wait for the socket source itself
        wait_for_log(daemon, "socket source .* listening on")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"".join(struct.pack(">I", len(p)) + p
                                  for p in (json.dumps(r).encode() for r in records)))
            acked = 0
            while acked < len(records):  # each ack: a 4-byte count of frames delivered
                acked += struct.unpack(">I", _read_exactly(conn, 4))[0]
        assert acked == len(records)
        stop(daemon)
    finally:
        daemon.stop()
    stored = td_emulator.records(api="ingest", database="app_db", table="events")
    assert [s["record"] for s in stored] == records


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk, "connection closed before the acks"
        data += chunk
    return data


def test_td_postback_with_table_routing(td_emulator: TDEmulator, tmp_path: Path) -> None:
    logs = tmp_path / "app.ndjson"
    records = [{"time": 1700000000 + i, "n": i, **({"_table": f"t_{i % 3}"} if i % 4 else {})}
               for i in range(60)]
    logs.write_text("".join(json.dumps(r) + "\n" for r in records))
    daemon = Daemon(EXAMPLES / "td-postback-routing.toml", tmp_path / "daemon.log", env={
        "STREAMER_DATA_DIR": str(tmp_path / "data"), "LOG_PATHS": str(logs),
        "TD_ENDPOINT": td_emulator.url, "TD_DATABASE": "app_db",
        "TD_WRITE_KEY": td_emulator.key})
    try:
        wait_until(lambda: len(td_emulator.records()) == len(records), timeout=120,
                   what="every record posted")
        stop(daemon)
    finally:
        daemon.stop()
    by_table: dict[str, list[dict]] = {}
    for stored in td_emulator.records(api="postback", database="app_db"):
        by_table.setdefault(stored["table"], []).append(stored["record"])
    expected: dict[str, list[dict]] = {}
    for r in records:
        expected.setdefault(r.get("_table", "events"), []).append(r)
    assert {t: sorted(rs, key=lambda r: r["n"]) for t, rs in by_table.items()} == expected


def _csv_rows(body: bytes) -> list[list[str]]:
    import csv

    text = (gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body).decode()
    return list(csv.reader(io.StringIO(text)))


def test_files_to_s3_to_data_exchange(moto_s3: MotoServer, s3_bucket: str,
                                      batchload_emulator: BatchLoadEmulator,
                                      tmp_path: Path) -> None:
    export = tmp_path / "export.ndjson"
    records = [{"time": 1700000000 + i, "sku": f"sku-{i}", "price": i * 1.5,
                "currency": "EUR", "in_stock": i % 2 == 0} for i in range(100)]
    export.write_text("".join(json.dumps(r) + "\n" for r in records))
    data_set = batchload_emulator.register_data_set(DATA_SET)
    done = run_cli("run", "-c", str(EXAMPLES / "files-s3-dataexchange.toml"), env={
        **moto_s3.aws_env(), "S3_ENDPOINT_URL": moto_s3.endpoint_url,
        "DATAEXCHANGE_ENDPOINT_URL": batchload_emulator.endpoint_url,
        "STREAMER_DATA_DIR": str(tmp_path / "data"), "EXPORT_PATHS": str(export),
        "STAGE_BUCKET": s3_bucket, "DATA_SET_ID": data_set})
    assert done.code == 0, done.stderr[-3000:]
    (revision,) = batchload_emulator.revisions(data_set)
    assert revision["Finalized"] is True
    rows: list[list[str]] = []
    for asset in batchload_emulator.assets(data_set, revision["Id"]):
        source = asset["Source"]
        body = moto_s3.s3().get_object(Bucket=source["Bucket"], Key=source["Key"])["Body"]
        rows += _csv_rows(body.read())[1:]
    assert sorted(rows, key=lambda r: int(r[0])) == [
        [str(r["time"]), r["sku"], _csv_number(r["price"]), "EUR",
         "true" if r["in_stock"] else "false"] for r in records]


def _csv_number(value: float) -> str:
    return repr(value)


def test_kafka_to_s3_to_timestream(moto_s3: MotoServer, s3_bucket: str,
                                   batchload_emulator: BatchLoadEmulator,
                                   kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    kafka_broker.create_topic("metrics", partitions=2)
    batchload_emulator.register_table("metrics", "hosts")
    records = [{"time": 1700000000 + i, "host": f"h{i % 4}", "region": "eu", "cpu": i / 8,
                "memory": 1000 + i} for i in range(80)]
    kafka_broker.produce("metrics", [json.dumps(r).encode() for r in records])
    api = free_port()
    daemon = Daemon(EXAMPLES / "kafka-s3-timestream.toml", tmp_path / "daemon.log", env={
        **moto_s3.aws_env(), "S3_ENDPOINT_URL": moto_s3.endpoint_url,
        "TIMESTREAM_ENDPOINT_URL": batchload_emulator.endpoint_url,
        "STREAMER_DATA_DIR": str(tmp_path / "data"), "STREAMER_API": f"127.0.0.1:{api}",
        "STAGE_BUCKET": s3_bucket, "KAFKA_BOOTSTRAP": kafka_broker.bootstrap})
    try:
        read_all(daemon, api, "metrics", len(records))
        stop(daemon)
    finally:
        daemon.stop()
    rows = batchload_emulator.rows("metrics", "hosts")
    got = sorted((row["time_ns"] // 10**9, row["dimensions"]["host"], row["measures"]["cpu"],
                  row["measures"]["memory"]) for row in rows)
    assert got == [(r["time"], r["host"], r["cpu"], r["memory"]) for r in records]


