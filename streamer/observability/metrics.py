"""Every counter of the process, owned by one `Metrics` object.

Hot paths bump plain integer attributes of `SourceStats` / `SinkStats` (one
add per batch, no locks); a custom collector turns them into Prometheus
samples at scrape time, so every scrape sees one consistent set of numbers and
the identity ``received = delivered + dead_lettered + dropped + in_flight``
holds in every sample.  Latency and size distributions use prometheus-client
histograms registered in the same per-process registry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

T = TypeVar("T")


@dataclass(slots=True)
class SourceStats:
    records: int = 0
    bytes: int = 0
    rejected: int = 0
    finished: bool = False

    def summary(self) -> dict:
        return {"records": self.records, "bytes": self.bytes, "rejected": self.rejected}


@dataclass(slots=True)
class SinkStats:
    received: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    retried: int = 0
    delivered_bytes: int = 0
    # monotonic time of the first failure of the current run of failures
    failing_since: float | None = None
    last_error: str | None = None
    extra: dict[str, int] = field(default_factory=dict)
    # load windows that cannot load (journaled `failed`): window id -> why
    failed_windows: dict[str, str] = field(default_factory=dict)

    @property
    def in_flight(self) -> int:
        return self.received - self.delivered - self.dead_lettered - self.dropped

    def failed(self, error: str) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.last_error = error

    def recovered(self) -> None:
        self.failing_since = None

    def count(self, name: str, amount: int = 1) -> None:
        """Sink-specific counters (files staged, windows loaded, ...)."""
        self.extra[name] = self.extra.get(name, 0) + amount

    def summary(self) -> dict:
        out = {
            "received": self.received,
            "delivered": self.delivered,
            "dead_lettered": self.dead_lettered,
            "dropped": self.dropped,
            "in_flight": self.in_flight,
        }
        out.update(sorted(self.extra.items()))
        if self.failed_windows:
            out["failed_windows"] = dict(self.failed_windows)
        return out


@dataclass(slots=True)
class CheckpointStats:
    """One durable save point written every checkpoint interval: a source's
    checkpoint, or the dead-letter sync that must precede them."""

    failures: int = 0
    last_saved: float = field(default_factory=time.monotonic)  # known up to date then
    failing_since: float | None = None  # monotonic time of the first failure of a run
    last_error: str | None = None

    def saved(self) -> None:
        self.last_saved = time.monotonic()
        self.failing_since = self.last_error = None

    def failed(self, error: str) -> None:
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.last_error = error


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.sources: dict[str, SourceStats] = {}
        self.sinks: dict[str, SinkStats] = {}
        self.checkpoints: dict[str, CheckpointStats] = {}
        self.gauges: dict[str, Callable[[], dict[str, float]]] = {}
        self._shared: dict[str, Any] = {}
        self.batch_records = Histogram(
            "streamer_sink_batch_records", "Records per batch handed to a sink",
            ["sink"], registry=self.registry,
            buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 50000))
        self.sink_latency = Histogram(
            "streamer_sink_latency_seconds",
            "Time from a batch leaving the buffer to its acknowledgement by the sink",
            ["sink"], registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300))
        self.registry.register(_StatsCollector(self))

    def source(self, name: str) -> SourceStats:
        return self.sources.setdefault(name, SourceStats())

    def sink(self, name: str) -> SinkStats:
        return self.sinks.setdefault(name, SinkStats())

    def checkpoint(self, name: str) -> CheckpointStats:
        return self.checkpoints.setdefault(name, CheckpointStats())

    def shared(self, name: str, factory: Callable[[CollectorRegistry], T]) -> T:
        """A metric family several components use (all td sinks, all stage sinks):
        created in this registry by the first one that asks for it."""
        if name not in self._shared:
            self._shared[name] = factory(self.registry)
        return self._shared[name]

    def watch(self, sink: str, gauges: Callable[[], dict[str, float]]) -> None:
        """Register live gauges of a sink (queue depth, oldest age, ...)."""
        self.gauges[sink] = gauges

    def unwatch(self, sink: str, gauges: Callable[[], dict[str, float]]) -> None:
        """Undo `watch`, unless a newer version of the sink watches that name now."""
        if self.gauges.get(sink) == gauges:
            del self.gauges[sink]

    def summary(self) -> dict:
        return {
            "sources": {n: s.summary() for n, s in self.sources.items()},
            "sinks": {n: s.summary() for n, s in self.sinks.items()},
        }


_SOURCE_COUNTERS = (
    ("records", "streamer_source_records_total", "Valid records read"),
    ("bytes", "streamer_source_bytes_total", "Bytes read, bad lines included"),
    ("rejected", "streamer_source_rejected_total", "Bad input lines sent to the dead-letter file"),
)
_SINK_COUNTERS = (
    ("received", "streamer_sink_received_total", "Records accepted into the sink's buffer"),
    ("delivered", "streamer_sink_delivered_total", "Records delivered by the sink"),
    ("dead_lettered", "streamer_sink_dead_lettered_total",
     "Records rejected by the destination and written to the dead-letter file"),
    ("dropped", "streamer_sink_dropped_total", "Records dropped by when_full = drop_newest"),
    ("retried", "streamer_sink_retries_total", "Retried requests or writes"),
    ("delivered_bytes", "streamer_sink_delivered_bytes_total", "Payload bytes delivered"),
)


class _StatsCollector:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        for attr, name, doc in _SOURCE_COUNTERS:
            family = CounterMetricFamily(name, doc, labels=["source"])
            for src, stats in m.sources.items():
                family.add_metric([src], getattr(stats, attr))
            yield family
        sink_items = list(m.sinks.items())
        for attr, name, doc in _SINK_COUNTERS:
            family = CounterMetricFamily(name, doc, labels=["sink"])
            for sink, stats in sink_items:
                family.add_metric([sink], getattr(stats, attr))
            yield family
        in_flight = GaugeMetricFamily(
            "streamer_sink_in_flight_records",
            "Records received but not yet delivered, dead-lettered or dropped", labels=["sink"])
        failing = GaugeMetricFamily(
            "streamer_sink_failing_seconds",
            "How long the sink has been failing without a success (0 = healthy)", labels=["sink"])
        now = time.monotonic()
        for sink, stats in sink_items:
            in_flight.add_metric([sink], stats.in_flight)
            failing.add_metric([sink], now - stats.failing_since if stats.failing_since else 0)
        yield in_flight
        yield failing
        yield from _checkpoint_families(m.checkpoints, now)
        extra = CounterMetricFamily(
            "streamer_sink_events",
            "Sink-specific event counts (files staged, windows loaded, ...)",
            labels=["sink", "event"])
        for sink, stats in sink_items:
            for event, value in sorted(stats.extra.items()):
                extra.add_metric([sink, event], value)
        yield extra
        live = GaugeMetricFamily("streamer_sink_gauge", "Live sink gauges (queue depth, ...)",
                                 labels=["sink", "gauge"])
        for sink, read in list(m.gauges.items()):
            for gauge, value in read().items():
                live.add_metric([sink, gauge], value)
        yield live


def _checkpoint_families(checkpoints: dict[str, CheckpointStats], now: float) -> Iterator[Metric]:
    failures = CounterMetricFamily(
        "streamer_checkpoint_failures",
        "Failed checkpoint writes (a source's, or the dead-letter sync); each is retried "
        "at the next interval", labels=["checkpoint"])
    age = GaugeMetricFamily(
        "streamer_checkpoint_age_seconds",
        "Time since the checkpoint was last saved or known up to date", labels=["checkpoint"])
    for name, stats in list(checkpoints.items()):
        failures.add_metric([name], stats.failures)
        age.add_metric([name], now - stats.last_saved)
    yield failures
    yield age
