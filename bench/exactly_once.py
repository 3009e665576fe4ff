"""Benchmark: file -> local stage with `exactly_once = true` vs the default path.

    python -m bench.exactly_once [--records 1000000] [--files 4] [--runs 3] [--workdir DIR]

Both runs are `streamer run` over the same input cut into `--files` files (one stream
each), same stage settings (load none); only `exactly_once` differs.  They alternate
per repetition in the same invocation; the ratio exactly-once/default of records/s
is the figure (issue #19 target >= 0.9).  Writes bench/results/exactly_once-<UTC>.json.
"""

from __future__ import annotations

from pathlib import Path

from bench.compare import compare, save
from bench.configs import config_text, file_source, stage_sink
from bench.file_to_stage import prepare_input, split_input
from bench.gen import FIELDS
from bench.harness import BenchError, Run, Scenario, script_parser, streamer_scenario
from bench.output_check import expect_output

DEFAULT = "file -> stage (at-least-once)"
EXACTLY_ONCE = "file -> stage (exactly_once)"


def scenario(name: str, tag: str, workdir: Path, input_path: Path, files: Path, n: int,
             exactly_once: bool) -> Scenario:
    """file -> stage of ``files`` (``input_path`` cut in parts); its stage must hold
    every record of the input once."""
    contents = expect_output(input_path, FIELDS)

    def config(run_dir: Path, _i: int) -> str:
        sink = stage_sink((run_dir / "stage").as_uri() + "/")
        if exactly_once:
            sink = sink.replace("[sinks.stage.load]", "exactly_once = true\n[sinks.stage.load]")
        return config_text(run_dir / "data", file_source(files), sink)

    def check(run: Run, run_dir: Path, i: int) -> None:
        staged = [p for p in (run_dir / "stage").rglob("part-*.csv") if p.is_file()]
        run.extra["output_files"] = len(staged)
        if not staged:
            raise BenchError(f"{name} run {i + 1}: stage dir is empty")
        contents(f"{name} run {i + 1}", staged)

    return streamer_scenario(name, n, workdir, tag, config, sink="stage", check=check,
                             inputs=[files])


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4)
    args = parser.parse_args()
    n = args.records
    input_path = prepare_input(args.workdir, n, args.seed)
    files = split_input(input_path, args.files)
    scenarios = [scenario(DEFAULT, "stage-alo", args.workdir, input_path, files, n, False),
                 scenario(EXACTLY_ONCE, "stage-eo", args.workdir, input_path, files, n, True)]
    results, ratios = compare(scenarios, args.runs, DEFAULT,
                              labels={EXACTLY_ONCE: "exactly_once/default"},
                              targets={EXACTLY_ONCE: 0.9})
    save("exactly_once", results, {"exactly_once_over_default": ratios[EXACTLY_ONCE].median,
                                   "records": n, "files": args.files})


if __name__ == "__main__":
    main()
