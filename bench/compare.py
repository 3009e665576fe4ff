"""A scenario script's comparison: its scenarios run alternately, the table printed,
the records/s of the others over a reference's (paired per run) printed, and the
results written to ``bench/results/<name>-<UTC stamp>.json``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.outcomes import Result, Spread, format_table, paired_ratio, write_results
from bench.scenario import Scenario, run_interleaved


def ratio_line(label: str, ratio: Spread, target: float | None = None) -> str:
    """``label records/s: xM (paired per run, LO-HI)`` and the target, if any."""
    line = (f"{label} records/s: x{ratio.median:.2f} (paired per run, "
            f"{ratio.min:.2f}-{ratio.max:.2f})")
    return line if target is None else f"{line}; target >= {target}"


def compare(scenarios: Sequence[Scenario], runs: int, reference: str, *,
            over: Sequence[str] | None = None, labels: Mapping[str, str] | None = None,
            targets: Mapping[str, float] | None = None,
            ) -> tuple[dict[str, Result], dict[str, Spread]]:
    """Run the scenarios ``runs`` times alternately, print the table and the ratio of
    each scenario in ``over`` (default: every one but ``reference``) over
    ``reference``, named ``labels[name]`` (default ``name / reference``), with
    ``targets[name]`` if given.  The results by name, and the ratios."""
    results = run_interleaved(scenarios, runs)
    print(format_table(list(results.values())))
    names = [s.name for s in scenarios if s.name != reference] if over is None else over
    ratios = {name: paired_ratio(results[name], results[reference]) for name in names}
    for name, ratio in ratios.items():
        print(ratio_line((labels or {}).get(name, f"{name} / {reference}"), ratio,
                         (targets or {}).get(name)))
    return results, ratios


def save(scenario: str, results: Mapping[str, Result], meta: Mapping[str, Any]) -> Path:
    """``write_results`` of every result, and its path printed."""
    path = write_results(scenario, list(results.values()), meta)
    print(f"results: {path}")
    return path
