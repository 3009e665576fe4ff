"""/health: a sink with failed load windows makes the process degraded (HTTP 200: it
still runs and delivers), a sink failing too long makes it failing (503)."""

import time

from streamer.observability.api import health
from streamer.observability.metrics import Metrics


def test_failed_windows_make_the_status_degraded_not_failing():
    metrics = Metrics()
    metrics.sink("td")
    metrics.sink("stage").failed_windows["w-1"] = "window w-1 ... failed: file gone"
    status, body = health(metrics, lambda: {"input": "reading"}, 60.0)
    assert status == 200 and body["status"] == "degraded"
    assert body["sinks"]["stage"]["state"] == "degraded"
    assert body["sinks"]["stage"]["failed_windows"] == {"w-1": "window w-1 ... failed: file gone"}
    assert body["sinks"]["td"]["state"] == "ok" and "failed_windows" not in body["sinks"]["td"]


def test_a_failing_sink_outranks_degraded():
    metrics = Metrics()
    metrics.sink("stage").failed_windows["w-1"] = "gone"
    metrics.sink("td").failed("503")
    metrics.sinks["td"].failing_since = time.monotonic() - 120
    status, body = health(metrics, dict, 60.0)
    assert status == 503 and body["status"] == "failing"
    assert body["sinks"]["td"]["state"] == "failing"
    assert body["sinks"]["stage"]["state"] == "degraded"


def test_no_failed_windows_is_ok():
    metrics = Metrics()
    metrics.sink("stage")
    assert health(metrics, dict, 60.0) == (200, {
        "status": "ok", "sources": {},
        "sinks": {"stage": {"state": "ok", "failing_for_s": 0.0, "last_error": None,
                            "in_flight": 0}},
        "checkpoints": {}})
