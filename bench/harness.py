"""Small reusable benchmark harness, one module a job; this module names them all, so
that every bench script imports from one place (``from bench.harness import ...``).

* ``bench.measure``: ``run_measured(cmd)`` runs one command as a subprocess and returns
  a ``Run``: wall time, peak RSS and PSS of the process tree, the largest VmHWM, CPU
  seconds, exit code, the last JSON line of stderr (``summary``).
* ``bench.scenario``: ``Scenario`` + ``run_interleaved`` run several commands
  alternately (A, B, C, A, B, C, ...) so that machine noise hits all of them alike;
  ``streamer_scenario`` builds the ``Scenario`` of a ``streamer run`` in a fresh
  directory per repetition that must report every record delivered; ``script_parser``,
  ``free_port``, ``expect_delivered``, ``expect_records``.
* ``bench.outcomes``: ``Result`` aggregates the runs of one scenario (median and
  min/max); ``format_table``, ``paired_ratio``, ``machine_info``, ``write_results``.
* ``bench.paths``: ``REPO_ROOT``, ``RESULTS_DIR``, ``WORKDIR``.

The scenario modules (``bench/file_to_stage.py``, ``file_to_s3.py``, ``file_to_td.py``,
``live_to_stage.py``, ...) build ``Scenario`` objects with these; ``bench/run.py`` runs
them all together.
"""

from __future__ import annotations

from bench.measure import BenchError, Run, TreeSample, run_measured
from bench.outcomes import (
    Result,
    Spread,
    format_table,
    machine_info,
    paired_ratio,
    spread,
    utc_stamp,
    write_results,
)
from bench.paths import REPO_ROOT, RESULTS_DIR, WORKDIR
from bench.scenario import (
    Scenario,
    compile_sources,
    expect_delivered,
    expect_records,
    free_port,
    run_interleaved,
    script_parser,
    streamer_executable,
    streamer_scenario,
    warm_page_cache,
    with_service,
)

__all__ = [
    "REPO_ROOT",
    "RESULTS_DIR",
    "WORKDIR",
    "BenchError",
    "Result",
    "Run",
    "Scenario",
    "Spread",
    "TreeSample",
    "compile_sources",
    "expect_delivered",
    "expect_records",
    "format_table",
    "free_port",
    "machine_info",
    "paired_ratio",
    "run_interleaved",
    "run_measured",
    "script_parser",
    "spread",
    "streamer_executable",
    "streamer_scenario",
    "utc_stamp",
    "warm_page_cache",
    "with_service",
    "write_results",
]
