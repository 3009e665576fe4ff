"""/metrics as Prometheus reads it: real scrapes of a running daemon checked by the
real `promtool check metrics` (valid text, no lint findings), with two sources and
sinks of each kind, and with workers = 2 (the supervisor's merged /metrics); every
metric the Grafana dashboard (config/grafana-dashboard.json) queries is in a scrape."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from collections import Counter
from importlib import metadata
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.kafka import CONSUMER_TIMING, KafkaBroker
from tests.fixtures.moto_s3 import MotoServer
from tests.fixtures.td import TDEmulator
from tests.helpers import (
    LISTENING,
    REPO,
    Daemon,
    base_config,
    encode,
    file_source,
    free_port,
    identity_problems,
    make_records,
    ndjson,
    scrape,
    scrape_text,
    send_in_pieces,
    socket_source,
    stage_sink,
    stop,
    td_sink,
    toml_keys,
    wait_for_log,
    wait_until,
    write_config,
    write_ndjson,
)
from tests.helpers.metric_samples import every_family_exposition

DASHBOARD = REPO / "config" / "grafana-dashboard.json"
DUCKDB_LOAD = '[sinks.{name}.load]\ntype = "duckdb"\ntable = "events"\n'


def promtool() -> str:
    """promtool comes from Debian's prometheus package: `make test` takes it out into
    .tools/bin when it is not on PATH."""
    local = REPO / ".tools" / "bin" / "promtool"
    path = shutil.which("promtool") or (str(local) if local.exists() else None)
    assert path, "promtool is missing: `make test-tools` installs it (package prometheus)"
    return path


def promtool_findings(text: str) -> str:
    """What `promtool check metrics` says about `text` ("" = valid, no lint findings)."""
    done = subprocess.run([promtool(), "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=60)
    findings = (done.stdout + done.stderr).decode().strip()
    return findings or ("" if done.returncode == 0 else f"exit {done.returncode}")


def one_help_per_family(text: str) -> list[str]:
    helps = Counter(line.split()[2] for line in text.splitlines() if line.startswith("# HELP "))
    return [name for name, count in helps.items() if count > 1]


def samples(text: str, name: str) -> dict[tuple, float]:
    """{sorted labels: value} of the samples called `name`."""
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name}


def rows_loaded(text: str) -> dict[str, float]:
    """Rows loaded so far by each sink that loaded any."""
    return {dict(labels)["sink"]: value
            for labels, value in samples(text, "streamer_load_rows_total").items()
            if ("outcome", "loaded") in labels and value > 0}


def kafka_source(name: str, broker: KafkaBroker, topic: str) -> str:
    return (f"[sources.{name}]\n"
            + toml_keys(type="kafka", bootstrap_servers=broker.bootstrap, topics=[topic],
                        group_id=f"group-{name}", **CONSUMER_TIMING) + "\n")


def s3_stage(tmp: Path, name: str, moto: MotoServer, bucket: str) -> str:
    return (stage_sink(tmp, name=name, url=f"s3://{bucket}/{name}/", max_file_age_s=0.2)
            + f"[sinks.{name}.s3]\n"
            + toml_keys(endpoint_url=moto.endpoint_url, region="us-east-1") + "\n")


def fast_stage(tmp: Path, name: str) -> str:
    """A local stage loading into DuckDB a window per file."""
    return (stage_sink(tmp, name=name, max_file_age_s=0.2, extra="window_files = 1\n")
            + DUCKDB_LOAD.format(name=name))


def test_every_family_passes_promtool_and_is_in_the_docs():
    text = every_family_exposition()
    assert promtool_findings(text) == ""
    assert one_help_per_family(text) == []
    docs = "\n".join(path.read_text() for path in [REPO / "README.md",
                                                   *(REPO / "docs").glob("**/*.md")])
    families = {family.name for family in text_string_to_metric_families(text)}
    assert len(families) > 40
    undocumented = [name for name in sorted(families)
                    if name.startswith("streamer_") and not name.endswith("_created")
                    and f"`{name}" not in docs]
    assert undocumented == []


def test_two_sources_and_sinks_of_each_kind_expose_each_family_once(
        tmp_path: Path, td_emulator: TDEmulator, kafka_broker: KafkaBroker,
        moto_s3: MotoServer, s3_bucket: str):
    records = make_records(400)
    lines = ndjson(records)
    write_ndjson(tmp_path / "in.ndjson", records[:100])
    for topic in ("a", "b"):
        kafka_broker.create_topic(topic, partitions=2)
    kafka_broker.produce("a", lines[100:150])
    kafka_broker.produce("b", lines[150:200])
    port = free_port()
    sinks = ["td_a", "td_b", "local_a", "local_b", "s3_a", "s3_b"]
    text = (base_config(tmp_path, api=f"127.0.0.1:{port}")
            + file_source(tmp_path / "in.ndjson", name="files")
            + socket_source("net_a", "newline") + socket_source("net_b", "length_prefixed")
            + kafka_source("kafka_a", kafka_broker, "a")
            + kafka_source("kafka_b", kafka_broker, "b")
            + td_sink(td_emulator.url, name="td_a", table="events_a")
            + td_sink(td_emulator.url, name="td_b", table="events_b", api="ingest")
            + fast_stage(tmp_path, "local_a") + fast_stage(tmp_path, "local_b")
            + s3_stage(tmp_path, "s3_a", moto_s3, s3_bucket)
            + s3_stage(tmp_path, "s3_b", moto_s3, s3_bucket))
    daemon = Daemon(write_config(tmp_path, text), tmp_path / "daemon.log",
                    env={"TD_WRITE_KEY": td_emulator.key, **moto_s3.aws_env()})
    try:
        ports = {name: int(wait_for_log(daemon, LISTENING.format(name=name))[-1].group(1))
                 for name in ("net_a", "net_b")}
        send_in_pieces(ports["net_a"], encode(lines[200:300], "newline"), seed=1)
        send_in_pieces(ports["net_b"], encode(lines[300:400], "length_prefixed"), seed=2)
        wait_until(lambda: all(scrape(port).get(("streamer_sink_delivered_total",
                                                 (("sink", sink),))) == 400 for sink in sinks),
                   timeout=60, what="400 records delivered by every sink")
        wait_until(lambda: len(rows_loaded(scrape_text(port))) == 2,
                   timeout=30, what="a window loaded by each local stage")
        wait_until(lambda: sum(samples(scrape_text(port),
                                       "streamer_kafka_committed_offset").values()) == 100,
                   timeout=30, what="every Kafka message committed")
        exposition = scrape_text(port)
        stop(daemon)
    finally:
        daemon.stop()

    assert promtool_findings(exposition) == ""
    assert one_help_per_family(exposition) == []
    metrics = scrape_at(exposition)
    assert identity_problems(metrics, sinks) == []
    assert samples(exposition, "streamer_source_records_total") == {
        (("source", "files"),): 100, (("source", "kafka_a"),): 50,
        (("source", "kafka_b"),): 50, (("source", "net_a"),): 100, (("source", "net_b"),): 100}
    assert samples(exposition, "streamer_socket_connections_total") == {
        (("outcome", outcome), ("source", source)): 1 if outcome == "accepted" else 0
        for outcome in ("accepted", "refused", "no_record", "evicted")
        for source in ("net_a", "net_b")}
    committed = samples(exposition, "streamer_kafka_committed_offset")
    assert {labels[1][1] for labels in committed} == {"kafka_a", "kafka_b"}
    lag = samples(exposition, "streamer_kafka_lag_messages")
    assert set(lag) == set(committed) and set(lag.values()) == {0}
    joins = samples(exposition, "streamer_kafka_join_seconds")  # test timing: about 1 s
    assert set(joins) == {(("source", "kafka_a"),), (("source", "kafka_b"),)}
    assert all(0.2 < seconds < 30 for seconds in joins.values()), joins
    assert set(samples(exposition, "streamer_td_requests_total")) >= {
        (("outcome", "2xx"), ("sink", "td_a")), (("outcome", "2xx"), ("sink", "td_b"))}
    assert set(samples(exposition, "streamer_sink_buffer_bytes")) == {
        (("sink", sink),) for sink in sinks}
    staged = samples(exposition, "streamer_stage_files_staged_total")
    assert set(staged) == {(("sink", sink),) for sink in sinks[2:]} and min(staged.values()) >= 1
    assert samples(exposition, "streamer_load_rows_total") == {
        **{(("outcome", "loaded"), ("sink", sink)): rows
           for sink, rows in rows_loaded(exposition).items()},
        (("outcome", "rejected"), ("sink", "local_a")): 0,
        (("outcome", "rejected"), ("sink", "local_b")): 0}
    assert sorted(rows_loaded(exposition)) == ["local_a", "local_b"]
    assert samples(exposition, "streamer_stage_windows_total")[
        (("sink", "s3_a"), ("state", "opened"))] >= 1
    [(build, one)] = samples(exposition, "streamer_build_info").items()
    assert one == 1 and dict(build)["python"] == platform.python_version()
    assert dict(build)["version"] == metadata.version("streamer")
    assert samples(exposition, "process_resident_memory_bytes")[()] > 0


def scrape_at(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def dashboard_queries() -> list[str]:
    """The PromQL of every panel and variable of the dashboard."""
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    exprs = [target["expr"] for panel in dashboard["panels"]
             for target in panel.get("targets", ())]
    assert exprs, "the dashboard has no queries"
    return exprs + [variable["definition"] for variable in dashboard["templating"]["list"]
                    if variable.get("definition")]


def dashboard_metrics() -> set[str]:
    """Every metric name the dashboard's queries use."""
    return {name for expr in dashboard_queries()
            for name in re.findall(r"\b(?:streamer|process|python)_[a-zA-Z0-9_]+", expr)}


def test_the_dashboard_queries_are_valid_promql(tmp_path: Path):
    """promtool parses each query (Grafana's variables given values) as a recording rule."""
    exprs = [expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
             for expr in dashboard_queries() if not expr.startswith("label_values(")]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{index}", "expr": expr}
        for index, expr in enumerate(exprs)]}]}
    path = tmp_path / "rules.json"  # YAML is a superset of JSON
    path.write_bytes(orjson.dumps(rules))
    done = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True,
                          timeout=60)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout.decode()


def test_workers_serve_one_valid_exposition_with_every_metric_of_the_dashboard(
        tmp_path: Path, td_emulator: TDEmulator, kafka_broker: KafkaBroker):
    records = make_records(300)
    (tmp_path / "in").mkdir()
    write_ndjson(tmp_path / "in" / "a.ndjson", records[:50])
    write_ndjson(tmp_path / "in" / "b.ndjson", records[50:100])
    kafka_broker.create_topic("a", partitions=2)
    kafka_broker.produce("a", ndjson(records[100:200]))
    port = free_port()
    config = write_config(tmp_path, "workers = 2\n"
                          + base_config(tmp_path, api=f"127.0.0.1:{port}")
                          + file_source(tmp_path / "in" / "*.ndjson", name="files")
                          + socket_source("net", "newline", port=free_port())
                          + kafka_source("kafka", kafka_broker, "a")
                          + td_sink(td_emulator.url, name="td")
                          + fast_stage(tmp_path, "local"))
    daemon = Daemon(config, tmp_path / "daemon.log", env={"TD_WRITE_KEY": td_emulator.key})
    try:
        def delivered(sink: str) -> float:
            return sum(v for (name, labels), v in scrape(port).items()
                       if name == "streamer_sink_delivered_total" and ("sink", sink) in labels)
        wait_until(lambda: delivered("td") == 200 and delivered("local") == 200, timeout=60,
                   what="the file and Kafka records delivered by both sinks")
        wait_until(lambda: rows_loaded(scrape_text(port)), timeout=30, what="a window loaded")
        exposition = scrape_text(port)
        stop(daemon)
    finally:
        daemon.stop()

    assert promtool_findings(exposition) == ""
    assert one_help_per_family(exposition) == []
    workers = {dict(labels)["worker"]
               for labels in samples(exposition, "streamer_sink_delivered_total")}
    assert workers == {"0", "1"}
    assert {dict(labels)["worker"]: value
            for labels, value in samples(exposition, "streamer_worker_up").items()} == {
        "0": 1, "1": 1}
    assert {dict(labels)["worker"]
            for labels in samples(exposition, "process_resident_memory_bytes")} == {
        "0", "1", "supervisor"}
    scraped = {s.name for family in text_string_to_metric_families(exposition)
               for s in family.samples}
    assert sorted(dashboard_metrics() - scraped) == []
    assert len(dashboard_metrics()) >= 20
