"""Raw consume rate of aiokafka against confluent-kafka (librdkafka) on the tansu broker.

    python -m bench.kafka_clients [--records 300000] [--runs 3]

Each run is a fresh process and a fresh consumer group reading the 4-partition topic
of bench/kafka_to_stage.py to its end and joining each fetch's values into one
block, as the Kafka source does, nothing else: what a client costs before any
pipeline work.  The clients alternate run by run.  Reported per client: the group
join (subscription to the first message), steady messages/s after it, CPU
microseconds a message (user + system of the process, the join left out).
confluent-kafka is not a dependency of streamer: `pip install confluent-kafka`
first, or its row is left out.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import resource
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import orjson

SESSION_TIMEOUT_MS = 6000  # the Kafka source's default: the join waits on it (tansu)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def consume_aiokafka(bootstrap: str, topic: str, n: int) -> tuple[float, float, float]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"raw-{uuid.uuid4().hex}",
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=100_000,
        session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=1000)  # fmt: skip
    started = time.perf_counter()
    await consumer.start()
    got, first, cpu = 0, 0.0, 0.0
    try:
        while got < n:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=100_000)
            if fetched and not first:
                first, cpu = time.perf_counter(), cpu_seconds()
            for messages in fetched.values():
                b"\n".join([m.value for m in messages])
                got += len(messages)
        return first - started, time.perf_counter() - first, cpu_seconds() - cpu
    finally:
        await consumer.stop()


def consume_confluent(bootstrap: str, topic: str, n: int) -> tuple[float, float, float]:
    from confluent_kafka import Consumer

    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex}",
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 1000})  # fmt: skip
    started = time.perf_counter()
    consumer.subscribe([topic])
    got, first, cpu = 0, 0.0, 0.0
    try:
        while got < n:
            messages = consumer.consume(100_000, 1.0)
            if messages and not first:
                first, cpu = time.perf_counter(), cpu_seconds()
            b"\n".join([m.value() for m in messages])
            got += len(messages)
        return first - started, time.perf_counter() - first, cpu_seconds() - cpu
    finally:
        consumer.close()


def child(client: str, bootstrap: str, topic: str, n: int) -> None:
    if client == "aiokafka":
        join, steady, cpu = asyncio.run(consume_aiokafka(bootstrap, topic, n))
    else:
        join, steady, cpu = consume_confluent(bootstrap, topic, n)
    print(orjson.dumps({"join_s": join, "steady_s": steady, "cpu_s": cpu}).decode())


def measure(client: str, bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.kafka_clients", "--child", client,
         "--bootstrap", bootstrap, "--topic", topic, "--records", str(n)],
        check=True, capture_output=True, timeout=300).stdout  # fmt: skip
    return orjson.loads(out.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--child", choices=("aiokafka", "confluent"))
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic", default="bench4")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.bootstrap, args.topic, args.records)
        return
    from pathlib import Path

    from bench.file_to_stage import prepare_input
    from bench.harness import WORKDIR
    from bench.kafka_to_stage import kafka_topics

    clients = ["aiokafka"]
    if importlib.util.find_spec("confluent_kafka") is not None:
        clients.append("confluent")
    else:
        print("confluent-kafka is not installed: its row is left out", file=sys.stderr)
    input_path = prepare_input(Path(args.workdir or WORKDIR), args.records, args.seed)
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    with kafka_topics(input_path) as bootstrap:
        for i in range(args.runs):
            for client in clients:
                run = measure(client, bootstrap, args.topic, args.records)
                runs[client].append(run)
                print(f"  run {i + 1}/{args.runs} {client:<10} join {run['join_s']:.2f}s "
                      f"steady {args.records / run['steady_s']:,.0f} msg/s "
                      f"cpu {run['cpu_s']:.2f}s", file=sys.stderr, flush=True)
    print(f"{'client':<10} {'join s':>7} {'steady msg/s':>13} {'cpu us/msg':>11}")
    for client, got in runs.items():
        join = statistics.median(r["join_s"] for r in got)
        rate = statistics.median(args.records / r["steady_s"] for r in got)
        cpu = statistics.median(r["cpu_s"] / args.records * 1e6 for r in got)
        print(f"{client:<10} {join:>7.2f} {rate:>13,.0f} {cpu:>11.2f}")


if __name__ == "__main__":
    main()
