"""Benchmark: NDJSON file -> S3 stage (moto on loopback) vs file -> local stage.

    python -m bench.file_to_s3 [--records 500000] [--runs 3] [--workdir DIR]

Both runs are `streamer run` with the same file source and the same stage settings
(load none); only the stage url differs.  They alternate per repetition in the same
invocation, and the ratio S3/local of records/s is the figure (issue target >= 0.7).
Writes bench/results/file_to_s3-<UTC>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import uuid
from pathlib import Path

import boto3

from bench.file_to_stage import ensure_input
from bench.gen import FIELDS
from bench.harness import (
    REPO_ROOT,
    Scenario,
    expect_delivered,
    format_table,
    paired_ratio,
    run_interleaved,
    streamer_executable,
    write_results,
)
from tests.fixtures.moto_s3 import start_moto_server


def config(workdir: Path, input_path: Path, run: str, url: str, s3: str) -> Path:
    path = workdir / f"{run}.toml"
    path.write_text(
        f"data_dir = {json.dumps(str(workdir / ('data-' + run)))}\n"
        '[api]\nlisten = ""\n'
        '[sources.input]\ntype = "file"\n'
        f"paths = [{json.dumps(str(input_path))}]\nfollow = false\n"
        '[sinks.stage]\ntype = "stage"\n'
        f"url = {json.dumps(url)}\ncolumns = {json.dumps(list(FIELDS))}\n"
        "max_file_records = 250000\n"
        f"{s3}"
        '[sinks.stage.load]\ntype = "none"\n')
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/streamer-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    input_path, _ = ensure_input(args.workdir, args.records, args.seed)
    exe = str(streamer_executable())
    n = args.records

    with start_moto_server() as moto:
        s3_client = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name=moto.region,
                                 aws_access_key_id="testing", aws_secret_access_key="testing")
        env = moto.aws_env()

        validate = expect_delivered("stage", n)

        def local(i: int) -> list[str]:
            url = (args.workdir / f"stage-local-{i}").as_uri() + "/"
            return [exe, "run", "-c", str(config(args.workdir, input_path, f"local-{i}", url,
                                                 ""))]

        def s3(i: int) -> list[str]:
            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            s3_client.create_bucket(Bucket=bucket)
            section = (f"[sinks.stage.s3]\nendpoint_url = {json.dumps(moto.endpoint_url)}\n"
                       f'region = "{moto.region}"\n')
            return [exe, "run", "-c", str(config(args.workdir, input_path, f"s3-{i}",
                                                 f"s3://{bucket}/stage/", section))]

        def cleanup(i: int) -> None:
            for name in (f"stage-local-{i}", f"data-local-{i}", f"data-s3-{i}"):
                shutil.rmtree(args.workdir / name, ignore_errors=True)

        scenarios = [
            Scenario("local stage", local, n, validate=validate, cleanup=cleanup,
                     cwd=REPO_ROOT, env=env),
            Scenario("s3 stage (moto)", s3, n, validate=validate, cwd=REPO_ROOT, env=env),
        ]
        results = run_interleaved(scenarios, args.runs)
    local_result, s3_result = results["local stage"], results["s3 stage (moto)"]
    ratio = paired_ratio(s3_result, local_result)
    print(format_table(list(results.values())))
    print(f"s3/local records/s: x{ratio.median:.2f} (paired per run, "
          f"{ratio.min:.2f}-{ratio.max:.2f}); target >= 0.7")
    path = write_results("file_to_s3", list(results.values()),
                         {"s3_over_local": ratio.median, "records": n})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
