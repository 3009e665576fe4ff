"""A batch encoded in parts at once, one DuckDB encoder (and thread) a part.

One process's native encoder is a single thread running one query at a time, while
the event loop's thread (reading, checking) needs about a third of a core: a process
with a core to spare leaves it idle.  With `native_encoders` > 1 a large batch is
cut into runs of about equal record counts, each encoded by its own
`NativeCsvEncoder` in its own thread (DuckDB releases the GIL), and the runs' CSV
rows are written in order: a CSV row is one record's, so the bytes are those of one
query over the whole batch.  Only a batch the sink coalesced while behind is large
enough (`MIN_PART_RECORDS`); a sink that keeps up still runs one query a batch.
Not the default: each encoder more costs memory (its own DuckDB) and CPU, and where
the cores are busy the threads only take turns (docs/configuration.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from streamer.core.lines import Lines
from streamer.sinks.stage.csv_native import Encoded

# a DuckDB query costs ~3 ms besides its rows (~4 us a record): below this a part
# would spend more than a sixth of its time on that fixed cost
MIN_PART_RECORDS = 4096


def cut(segments: Sequence[Lines], parts: int) -> list[list[Lines]]:
    """`segments` as at most `parts` runs of about equal record counts, in order, each
    at least MIN_PART_RECORDS (one run when the batch is smaller than two); a
    segment is split only where a run's share ends inside it."""
    records = sum(segment.count for segment in segments)
    parts = min(parts, records // MIN_PART_RECORDS)
    if parts <= 1:
        return [list(segments)]
    runs: list[list[Lines]] = []
    run: list[Lines] = []
    in_run = 0
    share = records // parts
    for segment in segments:
        rest: Lines | None = segment
        while rest is not None:
            room = share - in_run if len(runs) < parts - 1 else rest.count
            if rest.count <= room:
                run.append(rest)
                in_run += rest.count
                rest = None
            else:
                head, rest = rest.split(room)
                run.append(head)
                in_run += head.count
            if in_run >= share and len(runs) < parts - 1:
                runs.append(run)
                run, in_run = [], 0
    if run:
        runs.append(run)
    return runs


def joined(runs: Sequence[Sequence[Lines]], results: Sequence[Encoded]) -> Encoded:
    """The runs' results as one batch's: rows in order (the first run's, then
    `more_rows`), each left-out record's index over the whole batch."""
    if len(results) == 1:
        return results[0]
    rejected: list[tuple[int, str]] = []
    before = 0
    for run, result in zip(runs, results, strict=True):
        rejected += [(before + index, reason) for index, reason in result.rejected]
        before += sum(segment.count for segment in run)
    return Encoded(results[0].rows, rejected,
                   more_rows=[result.rows for result in results[1:]])
