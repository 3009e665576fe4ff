"""A stalled sink stops the reader and bounds memory; /metrics and /health tell."""

from __future__ import annotations

import resource
import time

import psutil
import pytest

from bench.gen import generate, iter_records
from tests.helpers import (
    BENCH_COLUMNS,
    Daemon,
    assert_same_rows,
    base_config,
    expected_rows,
    file_source,
    free_port,
    health,
    read_stage_rows,
    scrape,
    stage_sink,
    wait_until,
    write_config,
)


# the bounds below are on a loaded host (200,000 records generated, staged after the
# stall; the test timed out at 300 s at load ~20), not on the checks
@pytest.mark.timeout(900)
def test_stalled_sink_stops_reading_bounds_memory_then_delivers_everything(tmp_path):
    n = 200_000
    generate(tmp_path / "in.ndjson", n, seed=9)
    size = (tmp_path / "in.ndjson").stat().st_size
    port = free_port()
    config = write_config(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{port}",
                                                checkpoint_interval_s=None,
                                                api_settings={"unhealthy_after_s": 1})
                          + file_source(tmp_path / "in.ndjson", name="input", follow=False,
                                        poll_interval_ms=None)
                          + stage_sink(tmp_path, columns=BENCH_COLUMNS, max_file_age_s=None,
                                       fsync=None, extra="max_file_records = 10000000"))
    daemon = Daemon(config, tmp_path / "run.log")
    limit = 2 * 1024 * 1024
    # the disk is "full" for this process: writes past 2 MiB fail with EFBIG
    resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        stage = (("sink", "stage"),)
        wait_until(lambda: _ready(port)
                   and scrape(port).get(("streamer_sink_retries_total", stage), 0) > 0,
                   timeout=180, what="the stage sink to fail and retry")
        source_bytes = ("streamer_source_bytes_total", (("source", "input"),))
        samples = [scrape(port)[source_bytes]]

        def reading_stopped() -> bool:
            time.sleep(1.0)
            samples.append(scrape(port)[source_bytes])
            return samples[-1] == samples[-2]

        wait_until(reading_stopped, timeout=120, what="the source to stop reading")
        metrics = scrape(port)
        read = metrics[source_bytes]
        assert read < 40 * 1024 * 1024 < size  # bounded by the buffer, not the input
        rss = psutil.Process(daemon.proc.pid).memory_info().rss
        assert rss < 300 * 1024 * 1024
        received = metrics[("streamer_sink_received_total", stage)]
        delivered = metrics[("streamer_sink_delivered_total", stage)]
        in_flight = metrics[("streamer_sink_in_flight_records", stage)]
        assert delivered == 0 and received == in_flight > 0
        status, body = health(port)
        assert status == 503 and body["sinks"]["stage"]["state"] == "failing"
        assert "File too large" in body["sinks"]["stage"]["last_error"]
    finally:
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert daemon.wait(600) == 0, daemon.log[-3000:]
    _, rows = read_stage_rows(tmp_path / "stage")
    assert_same_rows(rows, expected_rows(iter_records(n, 9), BENCH_COLUMNS))


def test_metrics_identity_and_health_while_running(tmp_path):
    port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.ndjson").write_bytes(b'{"time":1}\n{"time":2}\nbad\n')
    config = write_config(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{port}",
                                                checkpoint_interval_s=None)
                          + file_source(logs / "*.ndjson", name="input", follow=None)
                          + stage_sink(tmp_path, columns=["time"], max_file_age_s=0.2,
                                       fsync=None))
    daemon = Daemon(config, tmp_path / "run.log")
    try:
        stage = (("sink", "stage"),)
        wait_until(lambda: _ready(port)
                   and scrape(port).get(("streamer_sink_delivered_total", stage)) == 2,
                   what="two records delivered")
        m = scrape(port)
        assert m[("streamer_source_records_total", (("source", "input"),))] == 2
        assert m[("streamer_source_rejected_total", (("source", "input"),))] == 1
        assert m[("streamer_sink_received_total", stage)] == (
            m[("streamer_sink_delivered_total", stage)]
            + m[("streamer_sink_dead_lettered_total", stage)]
            + m[("streamer_sink_dropped_total", stage)]
            + m[("streamer_sink_in_flight_records", stage)])
        files_staged = ("streamer_stage_files_staged_total", stage)
        assert m[files_staged] >= 1
        assert m[("streamer_sink_latency_seconds_count", stage)] >= 1
        status, body = health(port)
        assert status == 200
        checkpoints = body.pop("checkpoints")
        assert [(name, c["state"], c["failures"]) for name, c in checkpoints.items()] == [
            ("dead_letters", "ok", 0), ("input", "ok", 0)]
        assert body == {"status": "ok", "sources": {"input": {"state": "running"}},
                        "sinks": {"stage": {"state": "ok", "failing_for_s": 0.0,
                                            "last_error": None, "in_flight": 0}}}
    finally:
        daemon.signal()
        assert daemon.wait(120) == 0


def _ready(port: int) -> bool:
    return bool(scrape(port))
