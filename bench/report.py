"""The report of ``python -m bench.run``: one row per scenario or baseline, written as
``<date>.json`` (everything, every run), ``<date>.md`` (a markdown table) and
``<date>.png`` (bar charts of records/s and peak RSS, with their min-max spread).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.harness import Result, Spread, paired_ratio

__all__ = ["Goal", "Row", "build_rows", "chart", "markdown", "write_report"]

_MIB = 1024 * 1024


@dataclass(frozen=True)
class Goal:
    """What a row is compared with: ``baseline`` (a row key) and the issue's target, a
    minimum ratio of records/s (``min_ratio``) or a maximum peak RSS (``max_rss_mib``)."""

    baseline: str | None = None
    min_ratio: float | None = None
    max_rss_mib: float | None = None


@dataclass(frozen=True)
class Row:
    key: str
    role: str  # "scenario" or "baseline"
    result: Result
    baseline: Result | None
    goal: Goal

    @property
    def ratio(self) -> Spread | None:
        """Per-repetition records/s ratio to the baseline: median (min-max)."""
        return paired_ratio(self.result, self.baseline) if self.baseline else None

    @property
    def target(self) -> str:
        if self.goal.min_ratio is not None and self.baseline is not None:
            return f">= {self.goal.min_ratio:g}x {self.baseline.name}"
        if self.goal.max_rss_mib is not None:
            return f"peak RSS <= {self.goal.max_rss_mib:g} MiB"
        return ""

    @property
    def met(self) -> bool | None:
        """Whether the median meets the target (None: no target)."""
        ratio = self.ratio
        if self.goal.min_ratio is not None and ratio is not None:
            return ratio.median >= self.goal.min_ratio
        if self.goal.max_rss_mib is not None:
            return self.result.peak_rss.median <= self.goal.max_rss_mib * _MIB
        return None

    def to_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        rate, rss = self.result.records_per_s, self.result.peak_rss
        return {
            "key": self.key,
            "name": self.result.name,
            "role": self.role,
            "records": self.result.records,
            "records_per_s": {"median": rate.median, "min": rate.min, "max": rate.max},
            "peak_rss_bytes": {"median": rss.median, "min": rss.min, "max": rss.max},
            "peak_pss_bytes": vars(self.result.peak_pss),
            "processes": self.result.processes,
            "cpu_s_median": self.result.cpu.median,
            "baseline": self.baseline.name if self.baseline else None,
            "ratio": None if ratio is None else vars(ratio),
            "target": self.target or None,
            "met": self.met,
        }


def build_rows(
    results: Mapping[str, Result], goals: Mapping[str, Goal], baselines: Sequence[str]
) -> list[Row]:
    """Rows in the order of ``results`` (key -> Result); keys in ``baselines`` are
    baselines.  A row's baseline is left out when it did not run."""
    return [
        Row(key, "baseline" if key in baselines else "scenario", result,
            results.get(goals[key].baseline or ""), goals[key])
        for key, result in results.items()
    ]  # fmt: skip


def _records(row: Row) -> str:
    runs = row.result.runs
    if row.result.records or not runs:
        return f"{row.result.records:,}"
    # wrk: the requests it made in its fixed time
    return f"{statistics.median(r.records or 0 for r in runs):,.0f} requests"


def _ratio(row: Row) -> str:
    ratio = row.ratio
    if ratio is None or math.isnan(ratio.median):
        return ""
    return f"{ratio.median:.2f}x ({ratio.min:.2f}-{ratio.max:.2f})"


def _met(row: Row) -> str:
    return {True: "**met**", False: "**missed**", None: ""}[row.met]


def _pss(row: Row) -> str:
    """Peak PSS beside the summed RSS where the measured tree had several processes."""
    if row.result.processes <= 1:
        return ""
    return f"{row.result.peak_pss.fmt(_MIB, 1)} ({row.result.processes} processes)"


def markdown(rows: Sequence[Row], heading: str, notes: Sequence[str]) -> str:
    lines = [f"# {heading}", "", *notes, ""]
    lines.append(
        "| scenario | role | records | records/s median (min-max) | peak RSS MiB median "
        "(min-max) | peak PSS MiB | cpu s | compared with | ratio median (min-max) | target | |"
    )
    lines.append("|---|---|---:|---:|---:|---:|---:|---|---:|---|---|")
    for row in rows:
        r = row.result
        lines.append(
            f"| {r.name} | {row.role} | {_records(row)} | {r.records_per_s.fmt()} | "
            f"{r.peak_rss.fmt(_MIB, 1)} | {_pss(row)} | {r.cpu.median:.1f} | "
            f"{row.baseline.name if row.baseline else ''} | {_ratio(row)} | {row.target} | "
            f"{_met(row)} |"
        )
    return "\n".join(lines) + "\n"


def chart(rows: Sequence[Row], path: Path, title: str) -> None:
    """Two horizontal bar charts: records/s (log scale) and peak RSS, min-max as error
    bars; scenarios in blue, baselines in grey; the RSS targets as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, NullFormatter

    names = [row.result.name for row in rows][::-1]
    colors = ["tab:blue" if row.role == "scenario" else "tab:gray" for row in rows][::-1]
    limits = sorted({row.goal.max_rss_mib for row in rows if row.goal.max_rss_mib})
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.45 * len(rows) + 1.8), sharey=True)
    axes[0].set_xscale("log")
    panels = (  # axes, spreads, unit, label, room right of the longest bar
        (axes[0], [row.result.records_per_s for row in rows][::-1], 1.0, "records/s", 4.0),
        (axes[1], [row.result.peak_rss for row in rows][::-1], _MIB, "peak RSS, MiB", 1.15),
    )
    for ax, spreads, unit, label, room in panels:
        medians = [s.median / unit for s in spreads]
        highs = [s.max / unit for s in spreads]
        errors = [[m - s.min / unit for m, s in zip(medians, spreads, strict=True)],
                  [h - m for m, h in zip(medians, highs, strict=True)]]
        ax.barh(names, medians, xerr=errors, color=colors, capsize=3)
        for y, (value, high) in enumerate(zip(medians, highs, strict=True)):
            ax.annotate(f"  {value:,.0f}", (high, y), va="center", fontsize=8)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(right=max(highs) * room)
    axes[0].xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    axes[0].xaxis.set_minor_formatter(NullFormatter())
    axes[0].legend(handles=[Patch(color="tab:blue", label="scenario"),
                            Patch(color="tab:gray", label="baseline")], loc="lower right",
                   fontsize=8)
    if limits:
        axes[1].set_xlim(right=max(axes[1].get_xlim()[1], limits[-1] * 1.15))
    for limit in limits:
        axes[1].axvline(limit, color="tab:red", linestyle="--", linewidth=1)
        axes[1].annotate(f"target {limit:g} MiB", (limit, len(rows) - 0.6), color="tab:red",
                         fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    results_dir: Path, date: str, rows: Sequence[Row], doc: Mapping[str, Any],
    heading: str, notes: Sequence[str],
) -> list[Path]:
    """Write ``<date>.json``, ``<date>.md`` and ``<date>.png`` into ``results_dir``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    paths = [results_dir / f"{date}.{ext}" for ext in ("json", "md", "png")]
    full = {**doc, "rows": [row.to_dict() for row in rows],
            "results": [row.result.to_dict() for row in rows]}
    paths[0].write_bytes(orjson.dumps(full, option=orjson.OPT_INDENT_2) + b"\n")
    paths[1].write_text(markdown(rows, heading, notes), encoding="utf-8")
    if not rows:  # only rows of their own (latency): no chart
        return paths[:2]
    chart(rows, paths[2], heading)
    return paths
