"""Benchmark: NDJSON file -> S3 stage (moto on loopback) vs file -> local stage.

    python -m bench.file_to_s3 [--records 500000] [--runs 3] [--workdir DIR]

Both runs are `streamer run` with the same file source and the same stage settings
(load none); only the stage url differs.  They alternate per repetition in the same
invocation, and the ratio S3/local of records/s is the figure (issue target >= 0.7).
Writes bench/results/file_to_s3-<UTC>.json.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from bench.compare import compare, save
from bench.configs import config_text, file_source, stage_sink
from bench.file_to_stage import prepare_input, stage_scenario
from bench.gen import FIELDS
from bench.harness import BenchError, Run, Scenario, script_parser, streamer_scenario
from bench.output_check import data_files, expect_output

S3_STAGE = "file -> S3 stage"


def s3_scenario(
    workdir: Path,
    input_path: Path,
    n: int,
    moto: Any,
    *,
    timeout: float | None = None,
    keep: bool = False,
) -> Scenario:
    """``streamer run``: file source -> S3 stage on the moto server ``moto``
    (tests/fixtures/moto_s3.MotoServer), a fresh bucket per run.

    After each run (outside the timing) the bucket's objects are counted into the run's
    ``output_files`` / ``output_bytes``, downloaded and checked to hold every record of
    the input once, and deleted with the bucket unless ``keep``, so moto's memory does
    not grow from run to run.
    """
    client = moto.s3()
    buckets: dict[int, str] = {}

    def config(run_dir: Path, i: int) -> str:
        buckets[i] = f"bench-{i}-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=buckets[i])
        s3 = {"endpoint_url": moto.endpoint_url, "region": moto.region}
        sink = stage_sink(f"s3://{buckets[i]}/stage/", s3=s3)
        return config_text(run_dir / "data", file_source(input_path), sink)

    contents = expect_output(input_path, FIELDS)

    def check(run: Run, run_dir: Path, i: int) -> None:
        bucket = buckets.pop(i)
        objects = [
            obj
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for obj in page.get("Contents", [])
        ]
        run.extra["output_files"] = len(objects)
        run.extra["output_bytes"] = sum(obj["Size"] for obj in objects)
        try:
            if not objects:
                raise BenchError(f"{S3_STAGE} run {i + 1}: no object in s3://{bucket}/")
            copies = run_dir / "s3-objects"
            for index, obj in enumerate(objects):
                name = obj["Key"].rsplit("/", 1)[-1]
                copies.mkdir(exist_ok=True)
                client.download_file(bucket, obj["Key"], str(copies / f"{index:05d}-{name}"))
            contents(f"{S3_STAGE} run {i + 1}", data_files(copies))
        finally:
            if not keep:
                for obj in objects:
                    client.delete_object(Bucket=bucket, Key=obj["Key"])
                client.delete_bucket(Bucket=bucket)

    return streamer_scenario(
        S3_STAGE, n, workdir, "s3", config, sink="stage", check=check, keep=keep,
        env=moto.aws_env(), timeout=timeout, inputs=[input_path],
    )  # fmt: skip


def main() -> None:
    from tests.fixtures.moto_s3 import start_moto_server

    parser = script_parser(__doc__)
    parser.add_argument("--records", type=int, default=500_000)
    args = parser.parse_args()
    input_path = prepare_input(args.workdir, args.records, args.seed)
    n = args.records

    with start_moto_server() as moto:
        local = stage_scenario(args.workdir, input_path, n)
        results, ratios = compare([local, s3_scenario(args.workdir, input_path, n, moto)],
                                  args.runs, local.name, labels={S3_STAGE: "s3/local"},
                                  targets={S3_STAGE: 0.7})
    save("file_to_s3", results, {"s3_over_local": ratios[S3_STAGE].median, "records": n})


if __name__ == "__main__":
    main()
