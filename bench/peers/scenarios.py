"""The peer rows of ``python -m bench.run`` (key ``peers``), on the bench's own input:

* ``Fluent Bit tail -> CSV``: one tail input per input part -> one file output each,
  a template of the stage's columns (bench/peers/fluent_bit.py), measured to the
  moment every output file holds its part's line count;
* ``Fluent Bit tail -> HTTP``: the same inputs -> one ``http`` output, JSON lines, to
  the bench receiver (bench/td_receiver.py, its own process, a fresh one per run),
  measured to the moment the receiver has served every record;
* ``file -> td ingest, bench receiver``: the streamer's row to compare it with, the
  same input parts and receiver (td sink, ``api = "ingest"``).

Each run's output is checked outside the measurement (bench/peers/verify.py).
"""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bench.configs import config_text, file_source, td_sink
from bench.file_to_stage import split_input
from bench.harness import BenchError, Run, Scenario, streamer_scenario, with_service
from bench.peers.complete import LineCounter, ReceiverRecords
from bench.peers.fluent_bit import TimeFrom, csv_config, http_config, output_name
from bench.peers.verify import check_sampled_records, check_template_lines, records_of_bodies
from bench.td_concurrency import ReceiverProcess

__all__ = [
    "fluent_bit_csv_scenario",
    "fluent_bit_http_scenario",
    "input_parts",
    "streamer_http_scenario",
]

#: The bench input's ``time`` (epoch seconds) is the second of its ``ts`` string.
DEFAULT_TIME_FROM = TimeFrom("ts", "%Y-%m-%dT%H:%M:%SZ")
URI = "/fluent-bit"
_RECEIVER_ARGS = ("--sample", "12")  # bodies kept for the check, uniformly


def input_parts(input_path: Path, parts: int) -> list[tuple[Path, int]]:
    """The input cut into ``parts`` files (bench.file_to_stage.split_input, the files the
    streamer's ``workers = parts`` rows read), each with its line count."""
    pattern = split_input(input_path, parts)
    files = sorted(pattern.parent.glob(pattern.name)) if parts > 1 else [pattern]
    return [(path, _count_lines(path)) for path in files]


def _count_lines(path: Path) -> int:
    lines = 0
    with open(path, "rb", buffering=0) as fh:
        while chunk := fh.read(8 << 20):
            lines += chunk.count(b"\n")
    return lines


def _fresh(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def fluent_bit_csv_scenario(binary: Path, workdir: Path, parts: Sequence[tuple[Path, int]],
                            columns: Sequence[str], *,
                            time_from: TimeFrom | None = DEFAULT_TIME_FROM,
                            timeout: float | None = None, keep: bool = False) -> Scenario:
    """Fluent Bit, tail -> CSV files of ``columns``, one input and output per part."""
    name = f"Fluent Bit tail -> CSV ({len(parts)} inputs)"
    inputs = [path for path, _ in parts]
    expected = [lines for _, lines in parts]

    def run_dir(i: int) -> Path:
        return workdir / f"fluent-bit-csv-{i}"

    def outputs(i: int) -> list[Path]:
        return [run_dir(i) / "out" / output_name(k) for k in range(len(parts))]

    def prepare(i: int) -> None:
        out = _fresh(run_dir(i)) / "out"
        out.mkdir()
        csv_config(inputs, out, columns, run_dir(i), time_from=time_from).write(run_dir(i))

    def validate(run: Run, i: int) -> None:
        _require_complete(name, run, i)
        for output, (source, lines) in zip(outputs(i), parts, strict=True):
            check_template_lines(output, source, columns, time_from, lines)
        run.extra["output_bytes"] = sum(path.stat().st_size for path in outputs(i))

    return Scenario(
        name=name,
        command=lambda i: [binary, "-c", run_dir(i) / "fluent-bit.conf"],
        records=sum(expected),
        prepare=prepare,
        cleanup=None if keep else (lambda i: shutil.rmtree(run_dir(i), ignore_errors=True)),
        validate=validate,
        timeout=timeout,
        inputs=inputs,
        complete=lambda i: LineCounter(outputs(i), expected),
    )


def fluent_bit_http_scenario(binary: Path, workdir: Path, source: Path,
                             parts: Sequence[tuple[Path, int]], *,
                             timeout: float | None = None) -> Scenario:
    """Fluent Bit, tail -> http (JSON lines) to a fresh bench receiver per run."""
    name = f"Fluent Bit tail -> HTTP ({len(parts)} inputs)"
    inputs = [path for path, _ in parts]
    records = sum(lines for _, lines in parts)
    receiver = ReceiverProcess(_RECEIVER_ARGS)

    def run_dir(i: int) -> Path:
        return workdir / f"fluent-bit-http-{i}"

    def prepare(i: int) -> None:
        receiver.start()
        http_config(inputs, "127.0.0.1", receiver.port, URI, run_dir(i)).write(
            _fresh(run_dir(i)))

    def validate(run: Run, i: int) -> None:
        _require_complete(name, run, i)
        stats = receiver.stats()
        run.extra["receiver"] = stats
        if stats["json_lines_records"] != records:
            raise BenchError(f"{name} run {i + 1}: the receiver got "
                             f"{stats['json_lines_records']} records, expected {records}")
        run.extra["sample_checked"] = _check_sample(receiver, source)

    def cleanup(i: int) -> None:
        receiver.stop()
        shutil.rmtree(run_dir(i), ignore_errors=True)

    return Scenario(
        name=name,
        command=lambda i: [binary, "-c", run_dir(i) / "fluent-bit.conf"],
        records=records,
        prepare=prepare,
        cleanup=cleanup,
        validate=validate,
        timeout=timeout,
        inputs=inputs,
        complete=lambda i: ReceiverRecords("127.0.0.1", receiver.port, records),
    )


def streamer_http_scenario(workdir: Path, input_path: Path, n: int, workers: int,
                           concurrency: int, *, timeout: float | None = None) -> Scenario:
    """``streamer run``: file source -> td sink (ingest) to a fresh bench receiver per
    run, ``workers`` processes on the input cut into as many files."""
    name = "file -> td ingest, bench receiver" + (
        f" ({workers} workers)" if workers > 1 else "")
    receiver = ReceiverProcess(_RECEIVER_ARGS)
    files = split_input(input_path, workers)

    def check(run: Run, _run_dir: Path, _i: int) -> None:
        run.extra["receiver"] = receiver.stats()
        run.extra["sample_checked"] = _check_sample(receiver, input_path)

    scenario = streamer_scenario(
        name, n, workdir, f"td-ingest-receiver-w{workers}",
        lambda d, _i: config_text(d / "data", file_source(files),
                                  td_sink(receiver.url, "ingest", concurrency),
                                  workers=workers),
        sink="td", check=check, timeout=timeout, inputs=[files])
    return with_service(scenario, receiver.start, receiver.stop)


def _check_sample(receiver: ReceiverProcess, source: Path) -> int:
    with urllib.request.urlopen(f"{receiver.url}/sample", timeout=30) as response:
        return check_sampled_records(records_of_bodies(response.read()), source)


def _require_complete(name: str, run: Run, i: int) -> None:
    if run.exit_wall_s is None:
        raise BenchError(f"{name} run {i + 1}: exited (code {run.returncode}) before its "
                         f"output was complete\nstderr tail:\n{run.stderr_tail}")

