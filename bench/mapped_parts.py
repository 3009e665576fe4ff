"""Where the mapped encoder's time goes (issue #18): the native encoder alone, in one
process, over the ``stage_mapped`` records, one batch at a time.

    python -m bench.mapped_parts [--batch 20000] [--runs 15] [--seed 1]

Each row is a ``NativeCsvEncoder`` (the stage sink's native CSV encoder, public API
only) encoding the same batch, all rows alternating, and its CPU time (the
fastest of ``--runs``: on a shared machine the least disturbed run):

* ``plain``: the flat records, ``columns`` the 20 field names (the
  ``file -> stage`` row's encoder);
* ``paths only``: the nested records, the 20 columns read by their paths, every
  column a string (the typed query's read and its one object test a string cell);
* ``+ integers``, ``+ doubles``, ``+ timestamps``: the columns of that type typed
  as in ``stage_mapped``, on top of the row before;
* ``mapped``: the ``stage_mapped`` mapping (all of the above);
* ``mapped, SQL``: the same without the C typed encoder (``streamer/mapping/_typed.c``
  hidden, as in an install without a compiler): the typed query's SQL.

With the C typed encoder (every row above but ``plain`` and ``mapped, SQL``) a batch
runs no query at all when the C is sure of every record: the one-record figure is
then the C's call, not a query's.

Each is measured on a batch of ``--batch`` records and on a batch of one record:
the one-record figure is the cost a query has whatever its rows (parsing,
binding, planning: DuckDB binds a query over ``read_json`` again at every run),
and the difference, divided by the records, its cost a record.
"""

from __future__ import annotations

import argparse
import resource
import sys
from collections.abc import Sequence
from unittest import mock

import orjson

from bench.file_to_stage_mapped import mapping, nest
from bench.gen import FIELDS, iter_records
from streamer.core.lines import Lines
from streamer.sinks.stage.csv_native import NativeCsvEncoder

STEPS = (("paths only", ()), ("+ integers", ("integer",)),
         ("+ doubles", ("integer", "double")),
         ("+ timestamps", ("integer", "double", "timestamp")))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _typed_only(kinds: Sequence[str]) -> list[dict[str, str]]:
    """The stage_mapped mapping with the columns of other types read as strings."""
    return [column if column["type"] in kinds else
            {"name": column["name"], "from": column["from"], "type": "string"}
            for column in mapping()]


def _fastest(encoder: NativeCsvEncoder, batch: Lines, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = _cpu()
        encoded = encoder.encode([batch])
        best = min(best, _cpu() - start)
        if encoded.rejected:
            raise SystemExit(f"records left out: {encoded.rejected[:3]}")
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=20_000, help="records a batch")
    parser.add_argument("--runs", type=int, default=15, help="runs of each row")
    parser.add_argument("--seed", type=int, default=1, help="bench.gen seed")
    args = parser.parse_args(argv)
    records = list(iter_records(args.batch, args.seed))
    flat = [orjson.dumps(record) for record in records]
    nested = [orjson.dumps(nest(record)) for record in records]
    rows = {"plain": (NativeCsvEncoder(list(FIELDS)), flat)}
    for name, kinds in STEPS:
        rows[name] = (NativeCsvEncoder(_typed_only(kinds)), nested)
    rows["mapped"] = (NativeCsvEncoder(mapping()), nested)
    with mock.patch("streamer.sinks.stage.csv_native.typed_plan", return_value=None):
        rows["mapped, SQL"] = (NativeCsvEncoder(mapping()), nested)
    times: dict[str, dict[int, float]] = {name: {} for name in rows}
    for size in (1, args.batch):
        for _ in range(args.runs):  # alternating: every row sees the same moments
            for name, (encoder, raws) in rows.items():
                best = _fastest(encoder, Lines.of(raws[:size]), 1)
                times[name][size] = min(times[name].get(size, best), best)
    print(f"{args.batch:,}-record batch, fastest of {args.runs} runs (CPU)")
    print(f"{'encoder':<14} {'batch ms':>9} {'1 record ms':>12} {'us a record':>12} "
          f"{'vs plain':>9}")
    plain = times["plain"][args.batch]
    for name, by_size in times.items():
        fixed, whole = by_size[1], by_size[args.batch]
        print(f"{name:<14} {whole * 1e3:9.2f} {fixed * 1e3:12.2f} "
              f"{(whole - fixed) / args.batch * 1e6:12.2f} {plain / whole:8.2f}x")
    for encoder, _ in rows.values():
        encoder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
