"""`streamer check --connect` on the example configs against the real test servers
(TD emulator, moto S3, the Timestream / Data Exchange emulator, the Kafka broker):
every probe `ok`, then each failure mode with its reason; exit 0 / 1 / 2."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tests.fixtures.batchload import BatchLoadEmulator
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.moto_s3 import MotoServer
from tests.fixtures.td import TDEmulator
from tests.helpers.process import Finished, run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
DATA_SET = "0123456789abcdef0123456789abcdef"


def check_connect(example: str, env: dict[str, str]) -> Finished:
    return run_cli("check", "-c", str(EXAMPLES / example), "--connect", env=env, timeout=60)


def connect_lines(done: Finished) -> dict[str, str]:
    """label -> verdict of the lines after `connect:`."""
    lines = done.stdout.split("connect:\n", 1)[1].splitlines()
    return dict(line.strip().split(": ", 1) for line in lines)


def aws_env(moto: MotoServer, emu: BatchLoadEmulator, tmp: Path, **more: str) -> dict[str, str]:
    return {**moto.aws_env(), "S3_ENDPOINT_URL": moto.endpoint_url,
            "TIMESTREAM_ENDPOINT_URL": emu.endpoint_url,
            "DATAEXCHANGE_ENDPOINT_URL": emu.endpoint_url,
            "STREAMER_DATA_DIR": str(tmp / "data"), **more}


def test_socket_to_td_ingest_connects_and_a_wrong_key_is_refused(
        td_emulator: TDEmulator, tmp_path: Path) -> None:
    env = {"TD_ENDPOINT": td_emulator.url, "TD_DATABASE": "app_db", "TD_TABLE": "events",
           "TD_WRITE_KEY": td_emulator.key, "LISTEN": "127.0.0.1:0",
           "STREAMER_DATA_DIR": str(tmp_path / "data"), "STREAMER_API": "127.0.0.1:0"}
    done = check_connect("socket-to-td-ingest.toml", env)
    assert done.code == 0, done.stdout + done.stderr
    lines = connect_lines(done)
    assert lines["source producers (socket)"].startswith("ok")
    assert lines["sink td (td ingest)"].startswith("ok -- ")
    assert "key accepted" in lines["sink td (td ingest)"]
    assert td_emulator.records() == []  # nothing was written

    with socket.socket() as taken:  # the address in use, and a key TD refuses
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        wrong = "wrong-key-0123456789"
        done = check_connect("socket-to-td-ingest.toml", {
            **env, "TD_WRITE_KEY": wrong, "LISTEN": f"127.0.0.1:{port}"})
    assert done.code == 1, done.stdout + done.stderr
    lines = connect_lines(done)
    assert lines["source producers (socket)"].startswith("FAILED: ")
    assert "address already in use" in lines["source producers (socket)"].lower()
    assert lines["sink td (td ingest)"].startswith("FAILED: TD refused the write key (HTTP 403)")
    assert wrong not in done.stdout + done.stderr and td_emulator.key not in done.stdout
    assert td_emulator.records() == []


def test_postback_key_check_writes_nothing(td_emulator: TDEmulator, tmp_path: Path) -> None:
    logs = tmp_path / "app.ndjson"
    logs.write_text('{"a":1}\n')
    env = {"TD_ENDPOINT": td_emulator.url, "TD_DATABASE": "app_db",
           "TD_WRITE_KEY": td_emulator.key, "LOG_PATHS": str(logs),
           "STREAMER_DATA_DIR": str(tmp_path / "data")}
    done = check_connect("td-postback-routing.toml", env)
    assert done.code == 0, done.stdout + done.stderr
    lines = connect_lines(done)
    assert lines["source logs (file)"] == "ok -- 1 file(s) readable"
    assert "key accepted" in lines["sink td (td postback)"]
    assert td_emulator.records() == []


def test_s3_stage_and_data_exchange_connect_then_fail_when_missing(
        moto_s3: MotoServer, s3_bucket: str, batchload_emulator: BatchLoadEmulator,
        tmp_path: Path) -> None:
    export = tmp_path / "export.ndjson"
    export.write_text('{"sku":"a"}\n')
    data_set = batchload_emulator.register_data_set(DATA_SET)
    env = aws_env(moto_s3, batchload_emulator, tmp_path, STAGE_BUCKET=s3_bucket,
                  DATA_SET_ID=data_set, EXPORT_PATHS=str(export))
    done = check_connect("files-s3-dataexchange.toml", env)
    assert done.code == 0, done.stdout + done.stderr
    lines = connect_lines(done)
    assert lines["source export (file)"] == "ok -- 1 file(s) readable"
    assert lines["sink product (stage s3)"] == (
        f"ok -- s3://{s3_bucket}/dataexchange/ writable (probe object put and deleted)")
    assert lines["sink product (load dataexchange)"] == f"ok -- data set {data_set} exists"
    assert moto_s3.s3().list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0  # cleaned up

    done = check_connect("files-s3-dataexchange.toml", {
        **env, "STAGE_BUCKET": "no-such-bucket-here", "DATA_SET_ID": "f" * 32,
        "EXPORT_PATHS": str(tmp_path / "missing-*.ndjson")})
    assert done.code == 1, done.stdout + done.stderr
    lines = connect_lines(done)
    assert lines["source export (file)"].endswith("missing-*.ndjson: no file matches")
    assert lines["sink product (stage s3)"].startswith("FAILED: ")
    assert "NoSuchBucket" in lines["sink product (stage s3)"]
    assert lines["sink product (load dataexchange)"] == (
        f"FAILED: data set {'f' * 32} does not exist")
    assert moto_s3.secret_key not in done.stdout


def test_kafka_and_timestream_connect_then_fail_when_missing(
        moto_s3: MotoServer, s3_bucket: str, batchload_emulator: BatchLoadEmulator,
        kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    kafka_broker.create_topic("metrics")
    batchload_emulator.register_table("metrics", "hosts")
    env = aws_env(moto_s3, batchload_emulator, tmp_path, STAGE_BUCKET=s3_bucket,
                  KAFKA_BOOTSTRAP=kafka_broker.bootstrap, STREAMER_API="127.0.0.1:0")
    done = check_connect("kafka-s3-timestream.toml", env)
    assert done.code == 0, done.stdout + done.stderr
    lines = connect_lines(done)
    assert lines["source metrics (kafka)"] == "ok -- topic(s) metrics exist"
    assert lines["sink stage (stage s3)"].startswith("ok -- ")
    assert lines["sink stage (load timestream)"] == "ok -- table metrics.hosts exists"

    done = check_connect("kafka-s3-timestream.toml", {
        **env, "KAFKA_TOPIC": "no_such_topic", "TIMESTREAM_TABLE": "no_such_table"})
    assert done.code == 1, done.stdout + done.stderr
    lines = connect_lines(done)
    assert lines["source metrics (kafka)"] == "FAILED: topic(s) missing: no_such_topic"
    assert lines["sink stage (stage s3)"].startswith("ok -- ")
    assert lines["sink stage (load timestream)"] == (
        "FAILED: table metrics.no_such_table does not exist")


def test_a_config_error_is_exit_2_before_any_connection(tmp_path: Path) -> None:
    done = check_connect("socket-to-td-ingest.toml", {"STREAMER_DATA_DIR": str(tmp_path)})
    assert done.code == 2
    assert "TD_WRITE_KEY is not set" in done.stderr and "connect:" not in done.stdout


def test_a_fifo_or_socket_matching_a_file_glob_is_not_opened(tmp_path: Path) -> None:
    """`run` reads regular files only; `check --connect` opened every match, and
    opening a FIFO no one writes to blocked for ever (the probe's timeout cannot
    end a thread: the command never returned)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.ndjson").write_text('{"a":1}\n')
    os.mkfifo(logs / "pipe.ndjson")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(logs / "sock.ndjson"))
    (logs / "dir.ndjson").mkdir()
    try:
        done = check_connect("tail-to-duckdb.toml", {
            "LOG_PATHS": str(logs / "*.ndjson"), "STREAMER_DATA_DIR": str(tmp_path / "data"),
            "STREAMER_API": "127.0.0.1:0"})
    finally:
        listener.close()
    assert done.code == 0, done.stdout + done.stderr
    assert connect_lines(done)["source logs (file)"] == "ok -- 1 file(s) readable"
