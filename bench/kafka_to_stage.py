"""kafka -> stage against file -> stage in the same run, the group join apart.

    python -m bench.kafka_to_stage [--records 300000] [--runs 3]

One tansu broker holds the records twice: a 4-partition and an 8-partition topic
(round-robin).  Rows, alternating run by run:

* file -> stage (API on): one process, the reference, with the metrics API listening
  as in the Kafka runs (the driver polls it; aiohttp's import alone is 0.3 s of CPU);
* kafka -> stage (4 p.) and (8 p.): one process, a fresh consumer group a run;
* kafka -> stage (8 p., 2 instances): two processes in one group.

The driver (bench/kafka_driver.py --when-read) stops the streamers with SIGTERM once
their stage sinks have taken every record; the stop drains the stage, as the end
of the file does in the reference run.  Besides wall records/s it reports for each Kafka
row the group join (streamer_kafka_join_seconds: the longest of the instances), the
steady-state rate (records / (the streamers' wall - join)), and the streamers' own CPU per record
(the driver's polling left out), each over the reference in the same repetition;
the two-instance row's steady rate is also given over the one-instance row on the
same 8 partitions.

Each Kafka row also gives the CPU seconds of its streamers and of the broker (which
shares the machine's cores) in a run, and the two-instance row the ceiling the
machine puts on it: were all its cores busy with that work after the join, two
instances would take ``(streamers' + broker's CPU) / cores`` seconds; the one
instance's (wall - join) over that is the most two instances can gain here.  It
holds for a machine whose cores are free for the runs: the line also gives how many
cores the one instance and the broker kept busy (under other load, few).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.configs import config_text, file_source, stage_sink
from bench.file_to_stage import prepare_input
from bench.gen import FIELDS
from bench.harness import (
    Result,
    Run,
    Scenario,
    format_table,
    free_port,
    run_interleaved,
    script_parser,
    streamer_scenario,
    write_results,
)
from bench.live_driver import iter_blocks
from bench.output_check import data_files, expect_output, expect_stage

TOPICS = {"bench4": 4, "bench8": 8}


@contextlib.contextmanager
def kafka_broker_topics(input_path: Path) -> Iterator[Any]:
    """A tansu broker (tests/fixtures/kafka.py's ``KafkaBroker``) whose topics
    (``TOPICS``) each hold every line of ``input_path``."""
    from tests.fixtures.kafka import KafkaBroker

    with KafkaBroker() as broker:
        for topic, partitions in TOPICS.items():
            broker.create_topic(topic, partitions)
            for block in iter_blocks(input_path, 32 << 20):
                broker.produce(topic, block.splitlines())
        yield broker


@contextlib.contextmanager
def kafka_topics(input_path: Path) -> Iterator[str]:
    """``kafka_broker_topics``' bootstrap address."""
    with kafka_broker_topics(input_path) as broker:
        yield broker.bootstrap


def file_scenario(workdir: Path, input_path: Path, n: int) -> Scenario:
    """file -> stage, one process, with the metrics API on as the Kafka runs have it."""
    return streamer_scenario(
        "file -> stage (API on)", n, workdir, "file-api",
        lambda d, _i: config_text(d / "data", file_source(input_path),
                                  stage_sink((d / "stage").as_uri() + "/"),
                                  metrics_port=free_port()),
        sink="stage", inputs=[input_path],
        check=expect_stage("file -> stage (API on)", input_path),
    )  # fmt: skip


def kafka_scenario(workdir: Path, n: int, bootstrap: str, topic: str, input_path: Path,
                   instances: int = 1, broker_pid: int = 0) -> Scenario:
    """``instances`` streamers in one fresh group a run, reading ``topic`` to a local
    stage each, until their sources read ``n`` records in all (the driver measures
    the CPU of ``broker_pid`` too); their stages together must hold every record of
    ``input_path`` once."""
    contents = expect_output(input_path, FIELDS)

    def check(_run: Run, run_dir: Path, i: int) -> None:
        contents(f"{name} run {i + 1}", [file for home in sorted(run_dir.glob("instance-*"))
                                         for file in data_files(home / "stage")])

    partitions = TOPICS[topic]
    name = f"kafka -> stage ({partitions} p." + (f", {instances} instances)"
                                                 if instances > 1 else ")")
    argv: dict[int, list[str]] = {}

    def config(run_dir: Path, i: int) -> str:
        group = f"bench-{uuid.uuid4().hex[:12]}"
        texts = []
        for k in range(instances):
            port, home = free_port(), run_dir / f"instance-{k}"
            source = (f'type = "kafka"\nbootstrap_servers = "{bootstrap}"\n'
                      f'topics = ["{topic}"]\ngroup_id = "{group}"\n'
                      f'client_id = "bench-{k}"\n')
            sink = stage_sink((home / "stage").as_uri() + "/", max_file_age_s=1)
            texts.append((config_text(home / "data", source, sink, metrics_port=port), port))
        extra = []
        for k, (text, port) in enumerate(texts[1:], 1):
            path = run_dir / f"instance-{k}.toml"
            path.write_text(text, encoding="utf-8")
            extra += ["--also", f"{path}:{port}"]
        argv[i] = [str(texts[0][1]), str(n), "--when-read", *extra]
        if broker_pid:
            argv[i] += ["--broker-pid", str(broker_pid)]
        return texts[0][0]

    return streamer_scenario(
        name, n, workdir, f"kafka{partitions}x{instances}", config, sink="stage",
        argv=lambda path, i: [sys.executable, "-m", "bench.kafka_driver", path, *argv.pop(i)],
        check=check,
    )  # fmt: skip


def driver(run: Run) -> dict[str, float]:
    return (run.summary or {}).get("driver") or {}


def steady_wall(run: Run) -> float:
    """A Kafka run's wall seconds once the group has joined: the streamers' own (the
    driver's start-up left out, as the reference runs the streamer alone)."""
    return driver(run).get("streamer_wall_s", run.wall_s) - driver(run).get("join_s", 0.0)


def steady_rate(result: Result, run: Run) -> float:
    """Records per second once the group has joined."""
    return result.records / steady_wall(run)


def streamer_cpu(run: Run) -> float:
    """The streamers' CPU seconds (a Kafka run's driver measures them apart)."""
    return driver(run).get("streamer_cpu_s", run.cpu_s)


def work(run: Run) -> float:
    """CPU seconds of a Kafka run: its streamers' and the broker's."""
    return streamer_cpu(run) + driver(run).get("broker_cpu_s", 0.0)


def median(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def ratio(spread: tuple[float, float, float]) -> str:
    return f"x{spread[0]:.2f} ({spread[1]:.2f}-{spread[2]:.2f})"


def kafka_table(results: dict[str, Result], reference: Result,
                pair: tuple[str, str]) -> tuple[str, dict[str, dict[str, float]]]:
    """The Kafka rows: join, steady rate and CPU per record, each against the reference
    run of the same repetition; and the two-instance row over the one-instance one."""
    head = (f"{'scenario':<34} {'join s':>6} {'steady rec/s':>13} {'x file':>18} "
            f"{'cpu us/rec':>10} {'x file cpu':>18} {'cpu s (+broker)':>16}")
    lines, figures = [head, "-" * len(head)], {}
    ref_cpu = [streamer_cpu(r) / reference.records for r in reference.runs]
    ref_rate = [reference.rate(r) for r in reference.runs]
    lines.append(f"{reference.name:<34} {'-':>6} {statistics.median(ref_rate):>13,.0f} "
                 f"{'':>18} {statistics.median(ref_cpu) * 1e6:>10.2f}")
    for result in results.values():
        if result is reference:
            continue
        rates = [steady_rate(result, r) for r in result.runs]
        cpus = [streamer_cpu(r) / result.records for r in result.runs]
        over = median([a / b for a, b in zip(rates, ref_rate, strict=False)])
        cpu_over = median([a / b for a, b in zip(cpus, ref_cpu, strict=False)])
        join = statistics.median(driver(r).get("join_s", 0.0) for r in result.runs)
        streamers = statistics.median(streamer_cpu(r) for r in result.runs)
        broker = statistics.median(driver(r).get("broker_cpu_s", 0.0) for r in result.runs)
        figures[result.name] = {"join_s": join, "steady_records_per_s": statistics.median(rates),
                                "steady_over_file": over[0], "cpu_over_file": cpu_over[0],
                                "cpu_s": streamers, "broker_cpu_s": broker}
        lines.append(f"{result.name:<34} {join:>6.2f} {statistics.median(rates):>13,.0f} "
                     f"{ratio(over):>18} {statistics.median(cpus) * 1e6:>10.2f} "
                     f"{ratio(cpu_over):>18} {f'{streamers:.2f} (+{broker:.2f})':>16}")
    one, two = (results[name] for name in pair)
    scale = median([steady_rate(two, b) / steady_rate(one, a)
                    for a, b in zip(one.runs, two.runs, strict=False)])
    cores = os.cpu_count() or 1
    ceiling = median([cores * steady_wall(a) / work(b)
                      for a, b in zip(one.runs, two.runs, strict=False) if work(b)] or [0.0])
    # cores the one instance and the broker kept busy after the join: ~1.3 on an
    # idle 2-core machine; far less when other work takes the cores (the ceiling
    # then says little)
    busy = median([work(a) / steady_wall(a) for a in one.runs])
    figures["two_instances_over_one"] = {"steady": scale[0], "cpu_ceiling": ceiling[0],
                                         "one_instance_busy_cores": busy[0]}
    lines.append(f"two instances / one on 8 partitions, steady: x{scale[0]:.2f} "
                 f"({scale[1]:.2f}-{scale[2]:.2f}); the most {cores} cores allow for "
                 f"their CPU (streamers + broker): x{ceiling[0]:.2f} "
                 f"({ceiling[1]:.2f}-{ceiling[2]:.2f}), one instance keeping "
                 f"{busy[0]:.2f} cores busy")
    return "\n".join(lines), figures


def run() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--records", type=int, default=300_000)
    args = parser.parse_args()
    workdir, n = args.workdir, args.records
    input_path = prepare_input(workdir, n, args.seed)
    reference = file_scenario(workdir, input_path, n)
    with kafka_broker_topics(input_path) as broker:
        bootstrap, pid = broker.bootstrap, broker.pid or 0
        live = [kafka_scenario(workdir, n, bootstrap, "bench4", input_path, broker_pid=pid),
                kafka_scenario(workdir, n, bootstrap, "bench8", input_path, broker_pid=pid),
                kafka_scenario(workdir, n, bootstrap, "bench8", input_path, instances=2,
                               broker_pid=pid)]
        results = run_interleaved([reference, *live], args.runs)
    print(format_table(list(results.values())))
    table, figures = kafka_table(results, results[reference.name],
                                 (live[1].name, live[2].name))
    print(table)
    path = write_results("kafka_to_stage", list(results.values()),
                         {"records": n, "kafka": figures})
    print(f"results: {path}")


if __name__ == "__main__":
    run()
