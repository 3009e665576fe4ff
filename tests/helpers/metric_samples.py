"""A metrics exposition with one sample of every family a streamer process has."""

from __future__ import annotations

from prometheus_client import generate_latest

from streamer.observability.families import READINGS
from streamer.observability.metrics import Metrics
from streamer.sinks.stage.metrics import upload_seconds
from streamer.sinks.td.sink import request_histogram


def every_family_exposition() -> str:
    """Every family of families.py (each reading of a sink and of a source), and the
    core ones, in the text format."""
    metrics = Metrics()
    metrics.sink("a_sink")
    metrics.source("a_source")
    for owner in ("sink", "source"):
        readings = {}
        for key, entry in READINGS.items():
            if entry.family.owner == owner:
                free = len(entry.family.labels) - len(entry.labels)
                readings[(key, *["x"] * free) if free else key] = 1.0
        metrics.watch(f"a_{owner}", lambda readings=readings: readings, owner=owner)
    metrics.checkpoint("a_source")
    metrics.batch_records.labels("a_sink").observe(10)
    metrics.sink_latency.labels("a_sink").observe(0.5)
    request_histogram(metrics).labels("a_sink").observe(0.1)
    upload_seconds(metrics).labels("a_sink", "put").observe(0.1)
    return generate_latest(metrics.registry).decode()
