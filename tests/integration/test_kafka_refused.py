"""A broker that answers but refuses streamer's credentials (SASL): /health and
`check --connect` must say what the broker said, not only "cannot reach" (before
2026-12-04 the reason was in one of aiokafka's ERROR lines only, and /health read
like a network failure). tansu has no SASL configured: it refuses the handshake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.kafka import KafkaBroker
from tests.helpers import (
    Daemon,
    base_config,
    free_port,
    health,
    kafka_source,
    run_cli,
    stage_sink,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(60)

PASSWORD = "kafka-Pa55word-xyz"
SASL = ('security_protocol = "SASL_PLAINTEXT"\nsasl_mechanism = "PLAIN"\n'
        'sasl_plain_username = "streamer"\nsasl_plain_password = "${KAFKA_PASSWORD}"')


def _source_health(port: int) -> dict:
    try:
        return health(port)[1]["sources"]["kafka"]
    except OSError:
        return {}


def test_refused_credentials_are_named_in_health_and_check(kafka_broker: KafkaBroker,
                                                           tmp_path: Path) -> None:
    api = free_port()
    config = write_config(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{api}")
                          + kafka_source(kafka_broker, "g-sasl", SASL) + stage_sink(tmp_path))
    env = {"KAFKA_PASSWORD": PASSWORD}
    checked = run_cli("check", "--connect", "-c", str(config), env=env, timeout=40)
    daemon = Daemon(config, tmp_path / "daemon.log", env=env)
    try:
        wait_until(lambda: _source_health(api).get("state") == "unreachable", timeout=30,
                   what="the source unreachable in /health")
        source = _source_health(api)
    finally:
        daemon.stop()
    assert checked.code == 1
    (line,) = [x for x in checked.stdout.splitlines() if "source kafka (kafka)" in x]
    assert "UnsupportedSaslMechanismError" in line, checked.stdout
    assert kafka_broker.bootstrap in line
    assert "UnsupportedSaslMechanismError" in source["last_error"]
    assert kafka_broker.bootstrap in source["last_error"]
    for text in (checked.stdout, checked.stderr, daemon.log, str(source)):
        assert PASSWORD not in text
