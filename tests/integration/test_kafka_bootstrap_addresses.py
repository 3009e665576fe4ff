"""Bootstrap servers one of which drops SYNs (a blackholed route, a firewall that
drops, a broken IPv6 path): the source must reach the live one in about a second.

aiokafka connects with the loop's `create_connection` under `request_timeout_ms` (40 s)
and tries the bootstrap list in random order: each dead server tried first cost 40 s,
and a name whose first address is dead never reached its live one (the connect tries
a name's addresses one after the other). The dead addresses here are listeners on ::1
with a full backlog; the name's answer is given to the event loop's resolver (the only
stand-in: the broker, tansu, and the connections are real)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError

from streamer.sources.kafka.bootstrap import first_to_answer
from tests.fixtures.kafka import KafkaBroker
from tests.helpers import base_config, kafka_source, make_records, ndjson, stage_sink, write_config
from tests.helpers.sockets import blackholed_port, resolve_dead_first
from tests.helpers.staging import run_until_staged

pytestmark = pytest.mark.timeout(120)

NAME = "kafka.multi.test"


def test_dead_bootstrap_servers_listed_first_do_not_hold_the_source(
        kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    """Three dead servers and the live one: aiokafka's random order put a dead one first
    three times in four, and each such try waited 40 s."""
    records = make_records(300)
    kafka_broker.create_topic("events", 2)
    kafka_broker.produce("events", ndjson(records))
    with contextlib.ExitStack() as stack:
        dead = [stack.enter_context(blackholed_port()) for _ in range(3)]
        servers = [f"[::1]:{port}" for port in dead] + [kafka_broker.bootstrap]
        text = (base_config(tmp_path) + kafka_source(kafka_broker, "g-dead-first")
                + stage_sink(tmp_path)).replace(
            f'bootstrap_servers = "{kafka_broker.bootstrap}"',
            f'bootstrap_servers = "{",".join(servers)}"')
        assert ",".join(servers) in text
        run = run_until_staged(write_config(tmp_path, text), tmp_path / "daemon.log",
                               tmp_path / "stage", records)
    # well under one aiokafka connect timeout (40 s): the group join and the stage file's
    # close are most of it
    assert run.took < 25, (run.took, run.daemon.log[-3000:])
    assert run.summary["sinks"]["stage"]["delivered"] == len(records)


async def test_a_name_whose_first_address_is_dead_is_handed_over_as_its_live_address(
        kafka_broker: KafkaBroker) -> None:
    port = kafka_broker.port
    resolve_dead_first(asyncio.get_running_loop(), NAME, port)
    with blackholed_port(port):
        # what aiokafka does with the name: the dead address until the timeout, every try
        client = AIOKafkaClient(bootstrap_servers=f"{NAME}:{port}", request_timeout_ms=2000)
        with pytest.raises(KafkaConnectionError):
            await client.bootstrap()
        await client.close()

        started = time.monotonic()
        assert await first_to_answer([f"{NAME}:{port}"], keep_name=False) == [
            f"127.0.0.1:{port}"]
        assert await first_to_answer(["[::1]:1", f"{NAME}:{port}"], keep_name=True) == [
            f"{NAME}:{port}"]  # TLS checks the name: the name, first
        assert time.monotonic() - started < 5
        client = AIOKafkaClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=2000)
        await client.bootstrap()  # the address handed over bootstraps
        await client.close()
