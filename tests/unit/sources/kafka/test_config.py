"""Config of the Kafka source: defaults, validation, secrets."""

from __future__ import annotations

from typing import Any

import pytest

from streamer.config.check import check_report
from streamer.config.root import parse_config
from streamer.sources.kafka.config import KafkaSourceConfig
from tests.helpers import config_data, config_problems


def config(source: dict[str, Any]) -> dict[str, Any]:
    return config_data(sources={"in": source})


def problems(source: dict[str, Any]) -> list[str]:
    return config_problems(config(source))


def test_kafka_defaults_and_server_list() -> None:
    src = parse_config(config({"type": "kafka", "bootstrap_servers": "a:9092, b:9092",
                               "topics": ["t"], "group_id": "g"}), {}).sources["in"]
    assert isinstance(src, KafkaSourceConfig)
    assert src.bootstrap_servers == ["a:9092", "b:9092"]
    assert (src.start_from, src.max_in_flight_batches, src.session_timeout_ms,
            src.heartbeat_interval_ms, src.rebalance_timeout_ms, src.commit_timeout_s) == (
        "earliest", 1000, 6_000, 1_000, 30_000, 10.0)
    # records of aborted transactions are data that never existed: not read by default
    assert src.isolation_level == "read_committed"
    assert " isolation_level=read_committed " in check_report(
        parse_config(config({"type": "kafka", "bootstrap_servers": "a:9092",
                             "topics": ["t"], "group_id": "g"}), {}), "x.toml")


def test_an_isolation_level_kafka_does_not_have_names_the_key() -> None:
    found = problems({"type": "kafka", "bootstrap_servers": ["a:1"], "group_id": "g",
                      "topics": ["t"], "isolation_level": "committed"})
    assert len(found) == 1 and found[0].startswith("sources.in.isolation_level: "), found
    assert "read_committed" in found[0] and "read_uncommitted" in found[0], found


@pytest.mark.parametrize(("extra", "message"), [
    ({}, "set exactly one of topics or topic_pattern"),
    ({"topics": ["t"], "topic_pattern": "t.*"}, "set exactly one of topics or topic_pattern"),
    ({"topic_pattern": "("}, "invalid regular expression"),
    ({"topics": ["t"], "heartbeat_interval_ms": 6_000},
     "heartbeat_interval_ms must be below session_timeout_ms"),
    ({"topics": ["t"], "security_protocol": "SASL_SSL"},
     "needs sasl_plain_username and sasl_plain_password"),
    ({"topics": ["t"], "ssl_cafile": "/ca.pem"}, "need security_protocol SSL or SASL_SSL"),
])
def test_kafka_validation(extra: dict[str, Any], message: str) -> None:
    found = problems({"type": "kafka", "bootstrap_servers": ["a:1"], "group_id": "g", **extra})
    assert len(found) == 1 and message in found[0], found


@pytest.mark.parametrize(("server", "message"), [
    ("broker:99999", "port 99999 is not 1-65535"), ("broker:kafka", "port kafka is not 1-65535"),
    ("[::1]:0", "port 0 is not 1-65535")])
def test_a_bootstrap_server_port_that_cannot_be_is_refused(server: str, message: str) -> None:
    """Before 2026-12-05 it passed `check` and the source retried "Connection refused"
    for ever."""
    found = problems({"type": "kafka", "bootstrap_servers": ["a:9092", server],
                      "topics": ["t"], "group_id": "g"})
    assert found == [f"sources.in.bootstrap_servers: {server}: {message}"], found


def test_kafka_password_is_secret() -> None:
    cfg = parse_config(config({
        "type": "kafka", "bootstrap_servers": ["a:1"], "topics": ["t"], "group_id": "g",
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "user", "sasl_plain_password": "${PW}"}), {"PW": "hunter2"})
    src = cfg.sources["in"]
    assert src.sasl_plain_password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(cfg)
    text = check_report(cfg, "x.toml")
    assert "hunter2" not in text and "security_protocol=SASL_SSL" in text
