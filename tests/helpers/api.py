"""A running daemon's HTTP API (/metrics, /health) and the identity its counts keep:
received = delivered + dead_lettered + dropped + in_flight, per sink."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
OUTCOMES = ("delivered", "dead_lettered", "dropped", "in_flight")

Metrics = dict[tuple[str, tuple], float]


def scrape_text(port: int) -> str:
    """/metrics of a running daemon as served; "" while it is not listening yet."""
    try:
        return NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return ""


def scrape(port: int) -> Metrics:
    """/metrics of a running daemon: {(name, sorted labels): value}; {} while it is
    not listening yet."""
    text = scrape_text(port)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def health(port: int, timeout: float = 5) -> tuple[int, dict[str, Any]]:
    """/health of a running daemon: the HTTP status and the body (a 503 has one too)."""
    try:
        with NO_PROXY.open(f"http://127.0.0.1:{port}/health", timeout=timeout) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read())


def identity_problems(metrics: Metrics, sinks: list[str]) -> list[str]:
    """Sinks whose scrape breaks received = delivered + dead_lettered + dropped + in_flight."""
    problems = []
    for sink in sinks:
        label = (("sink", sink),)
        received = metrics[("streamer_sink_received_total", label)]
        parts = [metrics[(f"streamer_sink_{o}_total", label)] for o in OUTCOMES[:3]]
        parts.append(metrics[("streamer_sink_in_flight_records", label)])
        parts.append(metrics.get(("streamer_stage_records_handed_over_total", label), 0))
        if received != sum(parts):
            problems.append(f"{sink}: received {received} != {' + '.join(map(str, parts))}")
    return problems


def summary_identity_problems(summary: dict[str, Any]) -> list[str]:
    """Sinks of a run's summary that break the identity."""
    return [f"{name}: {sink}" for name, sink in summary["sinks"].items()
            if sink["received"] != sum(sink[o] for o in OUTCOMES)
            + sink.get("records_handed_over", 0)]
