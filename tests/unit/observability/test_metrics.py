"""The process's metric families: each exposed once however many sources and sinks
report into it, readings mapped to families with their units (families.py), and the
supervisor's merge of its workers' scrapes into one family per name."""

import ast

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from streamer.observability.families import READINGS, UNLISTED
from streamer.observability.metrics import Metrics
from streamer.supervisor.merged_api import merge_exposition
from tests.fixtures.processes import REPO


def exposition(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def samples(text: str, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name}


def helps(text: str) -> list[str]:
    return [line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")]


def test_two_sources_and_two_sinks_of_a_kind_share_each_family():
    metrics = Metrics()
    for name, accepted in (("net_a", 3), ("net_b", 5)):
        metrics.watch(name, lambda accepted=accepted: {
            "socket_open_connections": 1, ("socket_connections", "accepted"): accepted,
            ("socket_connections", "refused"): 0}, owner="source")
    for sink, staged in (("local", 2), ("s3", 7)):
        metrics.sink(sink).count("files_staged", staged)
        metrics.sink(sink).count("windows_loaded")
        metrics.watch(sink, lambda: {"buffer_bytes": 10, "oldest_in_flight_s": 1.5,
                                     "windows_pending_load": 2})
    text = exposition(metrics)

    names = helps(text)
    assert len(names) == len(set(names))
    assert samples(text, "streamer_socket_connections_total") == {
        (("outcome", "accepted"), ("source", "net_a")): 3,
        (("outcome", "accepted"), ("source", "net_b")): 5,
        (("outcome", "refused"), ("source", "net_a")): 0,
        (("outcome", "refused"), ("source", "net_b")): 0}
    assert samples(text, "streamer_stage_files_staged_total") == {
        (("sink", "local"),): 2, (("sink", "s3"),): 7}
    assert samples(text, "streamer_stage_windows_total") == {
        (("sink", "local"), ("state", "loaded")): 1, (("sink", "s3"), ("state", "loaded")): 1}
    assert samples(text, "streamer_stage_windows_current") == {
        (("sink", "local"), ("state", "pending_load")): 2,
        (("sink", "s3"), ("state", "pending_load")): 2}
    assert samples(text, "streamer_sink_oldest_in_flight_seconds") == {
        (("sink", "local"),): 1.5, (("sink", "s3"),): 1.5}


def test_readings_are_scaled_to_base_units_and_unlisted_ones_still_exposed():
    metrics = Metrics()
    metrics.sink("td").count("backoff_ms", 1500)
    metrics.sink("td").count("requests_5xx", 2)
    metrics.sink("td").count("something_new", 4)
    metrics.watch("td", lambda: {"new_gauge": 3})
    text = exposition(metrics)
    assert samples(text, "streamer_td_backoff_seconds_total") == {(("sink", "td"),): 1.5}
    assert samples(text, "streamer_td_requests_total") == {
        (("outcome", "5xx"), ("sink", "td")): 2}
    assert samples(text, "streamer_sink_something_new_total") == {(("sink", "td"),): 4}
    assert samples(text, "streamer_sink_new_gauge") == {(("sink", "td"),): 3}
    assert f"# HELP streamer_sink_new_gauge Live gauge {UNLISTED}" in text


def test_declared_events_are_exposed_at_0_until_they_happen():
    metrics = Metrics()
    metrics.declare("stage", ("files_staged", "windows_loaded"))
    metrics.sink("stage")
    text = exposition(metrics)
    assert samples(text, "streamer_stage_files_staged_total") == {(("sink", "stage"),): 0}
    assert samples(text, "streamer_stage_windows_total") == {
        (("sink", "stage"), ("state", "loaded")): 0}
    metrics.sink("stage").count("files_staged", 3)
    assert samples(exposition(metrics), "streamer_stage_files_staged_total") == {
        (("sink", "stage"),): 3}
    assert metrics.summary()["sinks"]["stage"]["files_staged"] == 3
    assert "windows_loaded" not in metrics.summary()["sinks"]["stage"]  # the summary's own


def test_unwatch_takes_back_only_the_version_that_watches_now():
    metrics = Metrics()

    def old() -> dict:
        return {"socket_open_connections": 1}

    def new() -> dict:
        return {"socket_open_connections": 2}

    metrics.watch("net", old, owner="source")
    metrics.watch("net", new, owner="source")  # a reload rebuilt the source
    metrics.unwatch("net", old, owner="source")
    assert samples(exposition(metrics), "streamer_socket_open_connections") == {
        (("source", "net"),): 2}
    metrics.unwatch("net", new, owner="source")
    assert "streamer_socket_open_connections" not in exposition(metrics)


def test_build_info_and_process_metrics_are_exposed():
    text = exposition(Metrics())
    [(labels, value)] = samples(text, "streamer_build_info").items()
    assert value == 1 and [name for name, _ in labels] == ["python", "version"]
    assert samples(text, "process_resident_memory_bytes")[()] > 0
    assert samples(text, "python_info")


def test_the_merge_labels_every_worker_and_keeps_one_family_per_name():
    texts = {}
    for worker in (0, 1):
        metrics = Metrics()
        metrics.sink("stage").delivered = 10 + worker
        texts[worker] = exposition(metrics)
    up = GaugeMetricFamily("streamer_worker_up", "1 while the worker runs", labels=["worker"])
    up.add_metric(["0"], 1)
    own = GaugeMetricFamily("process_open_fds", "Open fds", labels=["worker"])
    own.add_metric(["supervisor"], 12)
    text = merge_exposition(texts, [up, own]).decode()
    names = helps(text)
    assert len(names) == len(set(names))
    assert samples(text, "streamer_sink_delivered_total") == {
        (("sink", "stage"), ("worker", "0")): 10, (("sink", "stage"), ("worker", "1")): 11}
    assert set(samples(text, "process_open_fds")) == {
        (("worker", "0"),), (("worker", "1"),), (("worker", "supervisor"),)}


def reading_names_in_the_code() -> set[str]:
    """Readings the code reports by a literal name: `..._stats.count("name", ...)`, and
    the keys of the dicts that `_gauges`, `gauges` and `_readings` methods build."""
    names: set[str] = set()

    def literal(key: ast.expr | None) -> None:
        if isinstance(key, ast.Tuple) and key.elts:
            key = key.elts[0]
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)

    for path in (REPO / "streamer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "count" and isinstance(node.func.value, ast.Attribute)
                    and node.func.value.attr.endswith("stats") and node.args):
                literal(node.args[0])
            if isinstance(node, ast.FunctionDef) and node.name in ("_gauges", "gauges",
                                                                    "_readings"):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Dict):
                        for key in inner.keys:
                            literal(key)
                    elif isinstance(inner, ast.Subscript) and isinstance(inner.ctx, ast.Store):
                        literal(inner.slice)
    return names


def test_every_reading_the_code_reports_has_a_family():
    names = reading_names_in_the_code()
    assert {"files_staged", "buffer_bytes", "kafka_lag", "socket_connections"} <= names
    assert sorted(names - READINGS.keys()) == [], (
        "add them to READINGS in streamer/observability/families.py")
