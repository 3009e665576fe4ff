"""Prometheus families of the stage sink beyond SinkStats and its readings.

Several stage sinks share one process registry: the family is created once,
through `Metrics.shared`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamer.observability.metrics import Metrics

if TYPE_CHECKING:
    from prometheus_client import Histogram


def upload_seconds(metrics: Metrics) -> Histogram:
    """streamer_stage_upload_seconds{sink, operation}: part, put, complete, file."""
    from prometheus_client import Histogram

    return metrics.shared("stage_upload_seconds", lambda registry: Histogram(
        "streamer_stage_upload_seconds",
        "S3 stage requests: part uploads, single-object puts, multipart completions, "
        "and whole files from close to complete",
        ["sink", "operation"], registry=registry,
        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)))


STAGED_EVENTS = ("files_staged", "bytes_staged", "windows_opened", "windows_closed")
LOAD_EVENTS = ("windows_loaded", "windows_failed", "rows_loaded", "rows_rejected")


def declare_events(metrics: Metrics, sink: str, loads: bool) -> None:
    """The stage's event counters, at 0 until their first event."""
    metrics.declare(sink, STAGED_EVENTS + (LOAD_EVENTS if loads else ()))
