"""data_dir on a small filesystem that fills up for a while: the checkpoint loop
logs the failed writes, shows them in /health and /metrics, and catches up by
itself once space is freed; a kill -9 afterwards re-reads nothing (issue 17,
item 3).  Needs root (mount -t tmpfs), like the CI machine and `make test`."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import orjson
import pytest

from tests.fixtures.kafka import KafkaBroker
from tests.helpers import (
    Daemon,
    assert_stage_covers,
    assert_stage_equals,
    base_config,
    checkpoint_offset,
    file_source,
    free_port,
    health,
    kafka_source,
    make_records,
    ndjson,
    run_cli,
    scrape,
    stage_ids,
    stage_sink,
    stop,
    wait_for_log,
    wait_until,
    write_config,
)
from tests.helpers.filesystems import fill, small_filesystem

pytestmark = pytest.mark.timeout(120)

INTERVAL_S = 0.2
FULL_FOR_S = 3.0


class Writer(threading.Thread):
    """Appends records to `path` every 50 ms until stopped; `records` is all it wrote."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.records: list[dict] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            batch = make_records(50, seed=len(self.records), start=len(self.records))
            with open(self.path, "ab") as out:
                out.write(b"".join(orjson.dumps(r) + b"\n" for r in batch))
            self.records.extend(batch)
            self.stopped.wait(0.05)

    def stop(self) -> list[dict]:
        self.stopped.set()
        self.join(10)
        return self.records


def checkpoint_health(port: int) -> dict:
    return health(port)[1]


def test_a_full_data_dir_delays_the_checkpoint_and_it_catches_up_once_freed(tmp_path):
    source = tmp_path / "in.ndjson"
    source.touch()
    port = free_port()
    # one window for the whole test: the stage journal is not written while the disk is full
    text = (base_config(tmp_path, api=f"127.0.0.1:{port}", checkpoint_interval_s=INTERVAL_S)
            + file_source(source) + stage_sink(tmp_path, extra="window_files = 100000"))
    config = write_config(tmp_path, text)
    data, stage = tmp_path / "data", tmp_path / "stage"
    writer = Writer(source)
    with small_filesystem(data):
        daemon = Daemon(config, tmp_path / "daemon.log")
        try:
            wait_for_log(daemon, "metrics and health on")
            writer.start()
            wait_until(lambda: checkpoint_offset(data, "events") > 0, what="a first checkpoint")
            filler = fill(data)
            wait_until(lambda: checkpoint_health(port)["status"] == "degraded", timeout=10,
                       what="/health degraded")
            full_since = time.monotonic()
            stuck = checkpoint_offset(data, "events")
            body = checkpoint_health(port)
            failing = body["checkpoints"]["events"]
            assert failing["state"] == "failing" and failing["failures"] >= 1
            assert "No space left on device" in failing["last_error"]
            assert failing["failing_since"] is not None
            time.sleep(max(0.0, FULL_FOR_S - (time.monotonic() - full_since)))
            failures = {dict(labels)["checkpoint"]: value for (name, labels), value
                        in scrape(port).items() if name == "streamer_checkpoint_failures_total"}
            assert failures["events"] >= FULL_FOR_S / INTERVAL_S / 2  # retried all along
            # the old checkpoint stayed whole and behind; no temp copy is left
            assert checkpoint_offset(data, "events") == stuck < source.stat().st_size
            assert not list((data / "checkpoints").glob(".*.tmp"))
            wait_for_log(daemon, r"checkpoint events not saved \(last saved [\d.]+s ago\): "
                                 r"OSError: \[Errno 28\] No space left on device")

            filler.unlink()  # space again: the loop catches up by itself
            wait_until(lambda: checkpoint_health(port)["status"] == "ok", timeout=10,
                       what="/health ok again")
            wait_for_log(daemon, r"checkpoint events saved again after [\d.]+s of failures")
            time.sleep(1.0)  # and keeps moving while records arrive
            records = writer.stop()
            size = source.stat().st_size
            # every record acknowledged is under the checkpoint one interval later
            wait_until(lambda: checkpoint_offset(data, "events") == size, timeout=10,
                       what="the checkpoint at the end of the file")
            daemon.kill()  # kill -9: what the checkpoint covers is not read again
        finally:
            writer.stop()
            daemon.stop()
        again = run_cli("run", "-c", str(write_config(
            tmp_path, text.replace("follow = true", "follow = false"), "again.toml")))
        assert again.code == 0, again.stderr[-3000:]
        assert again.summary["sources"]["events"]["records"] == 0
    assert_stage_equals(stage, records)  # every record once: none lost, none repeated


def test_failed_kafka_commits_show_in_health_until_the_broker_is_back(
        tmp_path: Path, kafka_broker_persistent: KafkaBroker) -> None:
    broker = kafka_broker_persistent
    records = make_records(6_000, seed=4)
    broker.create_topic("events", 2)
    broker.produce("events", ndjson(records[:3_000]))
    port = free_port()
    text = (base_config(tmp_path, api=f"127.0.0.1:{port}", checkpoint_interval_s=INTERVAL_S)
            + kafka_source(broker, "gcommit", "max_poll_records = 200\n"
                           "max_in_flight_batches = 2\ncommit_timeout_s = 1")
            + stage_sink(tmp_path, extra="batch = {linger_ms = 100}"))
    daemon = Daemon(write_config(tmp_path, text), tmp_path / "daemon.log")
    stage = tmp_path / "stage"
    try:
        wait_until(lambda: stage_ids(stage).total() >= 500, timeout=60, what="some rows")
        broker.kill()  # what is acknowledged from now on cannot be committed
        wait_until(lambda: checkpoint_health(port)["status"] == "degraded", timeout=30,
                   what="/health degraded")
        failing = checkpoint_health(port)["checkpoints"]["kafka"]
        assert failing["state"] == "failing"
        assert failing["last_error"].startswith("KafkaCommitFailed: commit of events[")
        broker.restart()
        broker.produce("events", ndjson(records[3_000:]))
        wait_until(lambda: set(stage_ids(stage)) >= {r["id"] for r in records}, timeout=90,
                   what="every record staged after the broker restart")
        wait_until(lambda: checkpoint_health(port)["status"] == "ok", timeout=30,
                   what="/health ok again")
        assert checkpoint_health(port)["checkpoints"]["kafka"]["failures"] >= 1
        stop(daemon)
    finally:
        daemon.stop()
    assert_stage_covers(stage, records)
    assert broker.consume_all("events", "gcommit", commit=False) == []  # all committed


def test_a_checkpoint_not_saved_at_the_stop_is_exit_1_without_a_traceback(tmp_path):
    source = tmp_path / "in.ndjson"
    source.write_bytes(b"".join(line + b"\n" for line in ndjson(make_records(100))))
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=INTERVAL_S)
                          + file_source(source) + stage_sink(tmp_path, max_file_age_s=0.2))
    with small_filesystem(tmp_path / "data", size="1m") as data:
        daemon = Daemon(config, tmp_path / "run.log")
        try:
            wait_until(lambda: checkpoint_offset(data, "events") == source.stat().st_size,
                       what="the checkpoint at the end")
            filler = fill(data)
            with open(source, "ab") as out:  # read and staged, never checkpointed
                out.write(b"".join(line + b"\n" for line in ndjson(make_records(50, start=100))))
            wait_for_log(daemon, "checkpoint events not saved")
            daemon.signal()
            assert daemon.wait(60) == 1
        finally:
            daemon.stop()
        filler.unlink()
    log = daemon.log
    assert "Traceback" not in log, log[-3000:]
    assert "source events: checkpoint not saved: [Errno 28] No space left on device" in log
    assert ("stopped with 1 checkpoint(s) not saved: a restart reads again from the last "
            "checkpoint saved") in log, log[-3000:]


def test_bad_lines_on_a_full_data_dir_wait_for_space_and_reading_goes_on(tmp_path):
    """A dead letter that cannot be written (data_dir full) holds its file's
    reading back -- it is not lost, and the reader does not die -- and everything
    goes on once space is freed (before: the file was never read again, /health
    said ok, and the stop printed a traceback)."""
    source = tmp_path / "in.ndjson"
    first = make_records(100)
    source.write_bytes(b"".join(line + b"\n" for line in ndjson(first)))
    port = free_port()
    config = write_config(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{port}",
                                                checkpoint_interval_s=INTERVAL_S)
                          + file_source(source) + stage_sink(tmp_path, max_file_age_s=0.2,
                                                             url=f"file://{tmp_path}/stage/"))
    later = make_records(200, start=100)
    bad = [b'{"id": "no end', b"[1, 2]"]
    with small_filesystem(tmp_path / "data", size="1m") as data:
        daemon = Daemon(config, tmp_path / "run.log")
        try:
            wait_until(lambda: checkpoint_offset(data, "events") == source.stat().st_size,
                       what="the checkpoint at the end")
            filler = fill(data)
            with open(source, "ab") as out:
                out.write(b"".join(line + b"\n" for line in
                                   [*ndjson(later[:100]), *bad, *ndjson(later[100:])]))
            wait_until(lambda: checkpoint_health(port)["status"] == "degraded", timeout=10,
                       what="/health degraded")
            failing = checkpoint_health(port)["checkpoints"]["dead_letters"]
            assert "No space left on device" in failing["last_error"]
            wait_for_log(daemon, "dead letters of events cannot be written")
            filler.unlink()
            wait_until(lambda: set(stage_ids(tmp_path / "stage")) == {
                r["id"] for r in first + later}, timeout=20, what="every record staged")
            wait_until(lambda: checkpoint_offset(data, "events") == source.stat().st_size,
                       timeout=10, what="the checkpoint past the bad lines")
            assert checkpoint_health(port)["status"] == "ok"
            dead = [orjson.loads(line) for line in
                    (data / "dead_letter" / "events.ndjson").read_bytes().splitlines()]
            assert [d["raw"] for d in dead] == [b.decode() for b in bad]
            daemon.signal()
            assert daemon.wait(60) == 0
        finally:
            daemon.stop()
    assert "Traceback" not in daemon.log, daemon.log[-3000:]
    assert_stage_equals(tmp_path / "stage", first + later)


def test_a_journal_the_full_data_dir_does_not_take_waits_for_space_and_goes_on(tmp_path):
    """The stage journal cannot be appended to (data_dir full): the sink waits --
    nothing acknowledged, the source held back, one WARNING, /health degraded
    naming the journal and the error -- and goes on by itself once space is freed,
    every record staged once (before: the run stopped, exit 1)."""
    source = tmp_path / "in.ndjson"
    source.touch()
    port = free_port()
    config = write_config(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{port}",
                                                checkpoint_interval_s=INTERVAL_S)
                          + file_source(source)
                          + stage_sink(tmp_path, max_file_age_s=0.1,
                                       extra="window_age_s = 0.1"))
    writer = Writer(source)
    journal_error = re.compile(r"journal \S*journal/stage\.ndjson: \[Errno 28\] "
                               r"No space left on device")
    with small_filesystem(tmp_path / "data", size="1m") as data:
        daemon = Daemon(config, tmp_path / "run.log")
        try:
            wait_until(lambda: (data / "journal" / "stage.ndjson").exists(),
                       what="a first window journaled")
            filler = fill(data)  # the journal's next page cannot be had
            writer.start()
            wait_until(lambda: journal_error.search(
                health(port)[1]["sinks"]["stage"]["last_error"] or ""), timeout=20,
                what="the journal's error in /health")
            body = health(port)[1]
            assert body["status"] == "degraded" and body["sinks"]["stage"]["state"] == "degraded"
            staged = stage_ids(tmp_path / "stage")
            time.sleep(1.0)  # held back: no file completes while the journal waits
            assert daemon.proc.poll() is None
            assert stage_ids(tmp_path / "stage") == staged
            filler.unlink()  # space again: the sink goes on by itself
            wait_for_log(daemon, r"journal \S+ written again after [\d.]+s; the sink goes on")
            time.sleep(0.5)
            records = writer.stop()
            wait_until(lambda: checkpoint_offset(data, "events") == source.stat().st_size,
                       timeout=20, what="the checkpoint at the end")
            assert health(port)[1]["status"] == "ok"
            daemon.signal()
            assert daemon.wait(60) == 0
        finally:
            writer.stop()
            daemon.stop()
    log = daemon.log
    assert "Traceback" not in log, log[-3000:]
    assert len(re.findall(r"WARNING.*journal \S+ cannot be written", log)) == 1, log[-3000:]
    assert_stage_equals(tmp_path / "stage", records)
