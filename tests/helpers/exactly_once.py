"""The exactly-once suites' tailed-files-to-DuckDB set-up: the config (files tailed
from tmp/in -> a local exactly-once stage loaded into DuckDB table events, its staged
files kept), rows read back as CSV cells, and the check that each record is there
once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb

from tests.helpers.configs import base_config, file_source, stage_sink, toml_keys
from tests.helpers.records import COLUMNS


def tailed_stage_config(tmp: Path, follow: bool, sink: str) -> str:
    """Files tmp/in/*.log (checkpoints every second) -> sink `stage` (extra keys
    `sink`, files closed after 0.3 s idle) -> DuckDB; the staged files stay after
    their load, so the stage can be compared too."""
    load = "[sinks.stage.load]\n" + toml_keys(type="duckdb", table="events",
                                             delete_staged=False)
    return (base_config(tmp, checkpoint_interval_s=1.0)
            + file_source(str(tmp / "in" / "*.log"), follow=follow, extra="read_bytes = 16384")
            + stage_sink(tmp, max_file_age_s=0.3, extra=sink) + load)


def text_rows(con: duckdb.DuckDBPyConnection, source: str) -> list[list[str]]:
    """COLUMNS of `source` (a table or a reader) as CSV cells ('' for null), by id."""
    names = ", ".join(f'"{c}"' for c in COLUMNS)
    rows = con.execute(f"SELECT {names} FROM {source}").fetchall()
    return sorted(([("" if cell is None else str(cell)) for cell in row] for row in rows),
                  key=lambda row: int(row[0]))


def loaded_rows(db: Path) -> list[list[str]]:
    """The rows of table events in the DuckDB file `db`, as text_rows."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return text_rows(con, "events")
    finally:
        con.close()


def assert_each_once(rows: list[list[str]], records: int, where: str) -> None:
    """Ids 0..records-1 each in exactly one row (the first cell)."""
    ids = Counter(int(row[0]) for row in rows)
    assert len(ids) == records and set(ids.values()) == {1}, (
        f"{records - len(ids)} lost, {sum(ids.values()) - len(ids)} duplicated in {where}")
