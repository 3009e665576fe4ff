"""The runs of a scenario aggregated (``Result``: median and min/max as ``Spread``)
and reported: ``paired_ratio``, ``format_table``, ``machine_info``, ``write_results``."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.measure import Run
from bench.paths import REPO_ROOT, RESULTS_DIR

MIB = 1024 * 1024


@dataclass(frozen=True)
class Spread:
    median: float
    min: float
    max: float

    def fmt(self, scale: float = 1.0, digits: int = 0) -> str:
        m, lo, hi = (round(v / scale, digits) for v in (self.median, self.min, self.max))
        if digits == 0:
            m, lo, hi = int(m), int(lo), int(hi)
        return f"{m:,} ({lo:,}-{hi:,})"


def spread(values: Sequence[float]) -> Spread:
    if not values:
        return Spread(float("nan"), float("nan"), float("nan"))
    return Spread(statistics.median(values), min(values), max(values))


@dataclass
class Result:
    """All runs of one scenario."""

    name: str
    records: int
    runs: list[Run] = field(default_factory=list)

    @property
    def wall(self) -> Spread:
        return spread([r.wall_s for r in self.runs])

    def rate(self, run: Run) -> float:
        """Records per second of one run (its own count when it has one)."""
        records = self.records if run.records is None else run.records
        return records / run.wall_s if run.wall_s > 0 else float("nan")

    @property
    def records_per_s(self) -> Spread:
        return spread([self.rate(r) for r in self.runs if r.wall_s > 0])

    @property
    def peak_rss(self) -> Spread:
        return spread([r.peak_rss for r in self.runs])

    @property
    def peak_pss(self) -> Spread:
        return spread([r.peak_pss_bytes for r in self.runs])

    @property
    def processes(self) -> int:
        return max((r.processes for r in self.runs), default=0)

    @property
    def cpu(self) -> Spread:
        return spread([r.cpu_s for r in self.runs])

    def to_dict(self) -> dict[str, Any]:
        def sd(s: Spread) -> dict[str, float]:
            return asdict(s)

        return {
            "name": self.name,
            "records": self.records,
            "records_per_s": sd(self.records_per_s),
            "wall_s": sd(self.wall),
            "peak_rss_bytes": sd(self.peak_rss),
            "peak_pss_bytes": sd(self.peak_pss),
            "cpu_s": sd(self.cpu),
            "runs": [
                {
                    "wall_s": r.wall_s,
                    "records": self.records if r.records is None else r.records,
                    "records_per_s": self.rate(r) if r.wall_s > 0 else None,
                    "peak_rss_bytes": r.peak_rss,
                    "tree_rss_sampled_bytes": r.peak_rss_bytes,
                    "max_vm_hwm_bytes": r.hwm_bytes,
                    "peak_pss_bytes": r.peak_pss_bytes,
                    "processes": r.processes,
                    "cpu_s": r.cpu_s,
                    "samples": r.samples,
                    "returncode": r.returncode,
                    "exit_wall_s": r.exit_wall_s,
                    "summary": r.summary,
                    **r.extra,
                }
                for r in self.runs
            ],
        }


def paired_ratio(a: Result, b: Result) -> Spread:
    """Per-repetition ratio of records/s, a over b (runs paired by index)."""
    return spread(
        [
            a.rate(ra) / b.rate(rb)
            for ra, rb in zip(a.runs, b.runs, strict=False)
            if ra.wall_s > 0 and rb.wall_s > 0
        ]
    )


def format_table(results: Sequence[Result]) -> str:
    width = max([len("scenario"), *(len(r.name) for r in results)])
    head = (
        f"{'scenario':<{width}} {'records/s median (min-max)':>32} {'wall s median':>14} "
        f"{'peak RSS MiB median (min-max)':>30} {'peak PSS MiB':>13} {'cpu s':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.name:<{width}} {r.records_per_s.fmt():>32} {r.wall.median:>14.2f} "
            f"{r.peak_rss.fmt(MIB, 1):>30} {r.peak_pss.median / MIB:>13.1f} "
            f"{r.cpu.median:>7.2f}"
        )
    return "\n".join(lines)


def git_revision(root: Path = REPO_ROOT) -> str | None:
    """HEAD's short hash, with ``-dirty`` when tracked files differ from it (staged or
    not): the figures of a changed tree are not that commit's.  None outside git."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True, timeout=10, check=False)

    try:
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode != 0 or not head.stdout.strip():
            return None
        changed = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except OSError:
        return None
    return head.stdout.strip() + ("-dirty" if changed else "")


def machine_info() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "mem_total_bytes": vm.total,
        "loadavg": list(os.getloadavg()),
        "git_rev": git_revision(),
    }


def utc_stamp() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def write_results(
    scenario: str,
    results: Sequence[Result],
    meta: Mapping[str, Any],
    results_dir: str | os.PathLike[str] = RESULTS_DIR,
) -> Path:
    """Write ``<results_dir>/<scenario>-<UTC stamp>.json``; return its path."""
    out_dir = Path(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{scenario}-{utc_stamp()}.json"
    doc = {
        "scenario": scenario,
        "utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        **meta,
        "results": [r.to_dict() for r in results],
    }
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return path
