"""Every counter of the process, owned by one `Metrics` object.

Hot paths bump plain integer attributes of `SourceStats` / `SinkStats` (one
add per batch, no locks); a custom collector turns them into Prometheus
samples at scrape time, so every scrape sees one consistent set of numbers and
the identity ``received = delivered + dead_lettered + dropped + in_flight``
holds in every sample.  What sources and sinks report besides (event counts,
live gauges) are readings that families.py maps to families, each family
exposed once however many components report into it.  Latency and size
distributions use prometheus-client histograms registered in the same
per-process registry, beside its process, platform and GC collectors.  A process
without the metrics API (`exposed=False`) has no registry and does not import
prometheus-client: nothing could read it.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from streamer.observability.families import Kind, Owner, reading

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

T = TypeVar("T")


@dataclass(slots=True)
class SourceStats:
    records: int = 0
    bytes: int = 0
    rejected: int = 0
    finished: bool = False
    unreachable: str | None = None  # why the source cannot reach its input (/health)
    # files found but not readable (no permission, an I/O error): path -> why
    unread: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        out = {"records": self.records, "bytes": self.bytes, "rejected": self.rejected}
        if self.unread:  # a one-shot run exits 1 for them
            out["unread"] = dict(self.unread)
        return out


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
    # closed windows not loaded yet: window id -> "closed" (waiting) or "loading"
    unloaded_windows: dict[str, str] = field(default_factory=dict)
    # load windows that cannot load (journaled `failed`): window id -> why
    failed_windows: dict[str, str] = field(default_factory=dict)
    # answers that refuse the sink's requests, not their records, on the last answer of
    # each kind until a request is accepted (every record is dead-lettered meanwhile):
    # "key_refused" (TD 401/403) or "not_found" (TD 404/405/410) -> request and answer
    refusals: dict[str, str] = field(default_factory=dict)
    # the last failure is one retrying does not mend (an S3 bucket missing, access
    # denied): /health degraded at once, until an operation passes
    refused: bool = False
    # a failure no retry mends (a certificate that does not verify): a one-shot run
    # gives up on it at once (runtime/give_up.py); a daemon retries it like any other
    hopeless: str | None = None

    @property
    def in_flight(self) -> int:
        # records_handed_over: read here, then given to another owner of their Kafka
        # partition on a rebalance (an exactly-once stage): final for this instance
        return (self.received - self.delivered - self.dead_lettered - self.dropped
                - self.extra.get("records_handed_over", 0))

    def failed(self, error: str, refused: bool = False) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.last_error = error
        self.refused = refused

    def recovered(self) -> None:
        self.failing_since = None
        self.refused = False
        self.hopeless = None

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
        if self.unloaded_windows:  # a stop that did not wait for their loads
            out["unloaded_windows"] = dict(self.unloaded_windows)
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


# a reading's name, or (name, *label values), -> its value: see families.py
Readings = Mapping[Any, float]


class _Unread:
    """A histogram of a process without the metrics API: observations are dropped."""

    def labels(self, *_values: str) -> _Unread:
        return self

    def observe(self, _amount: float) -> None:
        pass


class Metrics:
    def __init__(self, exposed: bool = True) -> None:
        """`exposed`: the metrics API may serve this process's registry."""
        self.registry: CollectorRegistry | None = None
        self.sources: dict[str, SourceStats] = {}
        self.sinks: dict[str, SinkStats] = {}
        self.checkpoints: dict[str, CheckpointStats] = {}
        self.gauges: dict[tuple[Owner, str], Callable[[], Readings]] = {}
        self.declared: dict[str, tuple[str, ...]] = {}  # sink -> event counters shown at 0
        self._shared: dict[str, Any] = {}
        self.batch_records: Any = _Unread()
        self.sink_latency: Any = self.batch_records
        if exposed:
            self._register()

    def _register(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            GCCollector,
            Histogram,
            PlatformCollector,
            ProcessCollector,
        )

        self.registry = CollectorRegistry(auto_describe=False)
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
        for standard in (ProcessCollector, PlatformCollector, GCCollector):
            standard(registry=self.registry)

    def source(self, name: str) -> SourceStats:
        return self.sources.setdefault(name, SourceStats())

    def sink(self, name: str) -> SinkStats:
        return self.sinks.setdefault(name, SinkStats())

    def checkpoint(self, name: str) -> CheckpointStats:
        return self.checkpoints.setdefault(name, CheckpointStats())

    def shared(self, name: str, factory: Callable[[CollectorRegistry | None], T]) -> T:
        """A metric family several components use (all td sinks, all stage sinks):
        created in this registry (none: not registered) by the first one that asks."""
        if name not in self._shared:
            self._shared[name] = factory(self.registry)
        return self._shared[name]

    def watch(self, name: str, read: Callable[[], Readings], owner: Owner = "sink") -> None:
        """Register the live readings of a sink or source (queue depth, oldest age,
        connections, ...), read at every scrape; families.py names their families."""
        self.gauges[owner, name] = read

    def declare(self, sink: str, events: tuple[str, ...]) -> None:
        """Event counters of a sink (`SinkStats.count`) exposed at 0 before their first
        event, so that rate() and increase() count that event too."""
        self.declared[sink] = events

    def unwatch(self, name: str, read: Callable[[], Readings], owner: Owner = "sink") -> None:
        """Undo `watch`, unless a newer version of the component watches that name now."""
        if self.gauges.get((owner, name)) == read:
            del self.gauges[owner, name]

    def summary(self) -> dict:
        return {
            "sources": {n: s.summary() for n, s in self.sources.items()},
            "sinks": {n: s.summary() for n, s in self.sinks.items()},
        }


def incomplete(summary: dict) -> bool:
    """Whether a run's summary (a process's, or the sum of its workers') says it did
    not load everything: a load window journaled `failed` (see `streamer loads
    retry`), a key refused, a TD destination not found, or a file a source found and
    could not read.  A one-shot run exits 1 for it; a daemon shows it in /health and
    still exits 0 on SIGTERM."""
    return (any(s.get("windows_failed") or s.get("key_refused") or s.get("not_found")
                for s in summary.get("sinks", {}).values())
            or any(s.get("unread") for s in summary.get("sources", {}).values()))


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
        self._build_info = build_info()  # the version is read once

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        m = self._metrics
        yield self._build_info
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
        families = _ReadingFamilies()
        for sink, stats in sink_items:
            for event in m.declared.get(sink, ()):
                if event not in stats.extra:
                    families.add(event, "sink", "counter", (sink,), 0)
            for event, value in list(stats.extra.items()):
                families.add(event, "sink", "counter", (sink,), value)
        for (owner, name), read in list(m.gauges.items()):
            for key, value in read().items():
                if isinstance(key, tuple):
                    families.add(key[0], owner, "gauge", (name, *key[1:]), value)
                else:
                    families.add(key, owner, "gauge", (name,), value)
        yield from families.collected()


class _ReadingFamilies:
    """The families of one scrape's readings, each created once (families.py)."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def add(self, key: str, owner: Owner, kind: Kind, labels: tuple[str, ...],
            value: float) -> None:
        entry = reading(key, owner, kind)
        spec = entry.family
        family = self._families.get(spec.name)
        if family is None:
            from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

            make = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
            family = self._families[spec.name] = make(
                spec.name, spec.doc, labels=[spec.owner, *spec.labels])
        family.add_metric([labels[0], *entry.labels, *labels[1:]], value * entry.scale)

    def collected(self) -> list[Metric]:
        return sorted(self._families.values(), key=lambda family: family.name)


def build_info() -> Metric:
    """streamer_build_info{version, python} 1: the installed package's version."""
    from importlib import metadata

    from prometheus_client.core import GaugeMetricFamily

    try:
        version = metadata.version("streamer")
    except metadata.PackageNotFoundError:
        version = "unknown"
    info = GaugeMetricFamily("streamer_build_info", "The running streamer: 1, labelled with "
                             "its version and Python's", labels=["version", "python"])
    info.add_metric([version, platform.python_version()], 1)
    return info


def _checkpoint_families(checkpoints: dict[str, CheckpointStats], now: float) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

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
