"""What a row wrote, checked against its input after each run, outside the measurement.

A row's records/s means something only if its output holds every input record once:
a run that lost records, duplicated some or changed cells must stop the bench, not be
reported as a speed.  The summary a streamer prints is its own word for it; this reads
the output itself.  Each output (a stage's files, a baseline's CSV) is reduced to a
``Digest``: its row count and the sum of a hash of each row (DuckDB's ``hash`` of the
row's cells as text), so rows may come in any order and in any number of files, while a
row lost and another duplicated, or one cell changed, shows.  The expected digest is the
tight loop's CSV of the same input (``bench.baselines.tight_loop``, which the stage
writes byte for byte), computed once per input and columns and cached beside the input.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.measure import BenchError, Run

#: The staged files' names by format, compressed or not (``part-NNNNN.csv.gz``, ...).
DATA_SUFFIXES = (".csv", ".csv.gz", ".csv.zst", ".ndjson", ".ndjson.gz", ".ndjson.zst",
                 ".parquet")


@dataclass(frozen=True)
class Digest:
    rows: int
    row_hash_sum: int


def data_files(directory: Path) -> list[Path]:
    """The data files under ``directory`` (a stage, a run's output dir), sorted."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name.endswith(DATA_SUFFIXES))


def shape_columns(shape: str = "default") -> tuple[list[str], list[str]]:
    """A ``bench.gen`` shape's columns and, of them, those written as JSON text."""
    from bench.gen import shape_types

    types = shape_types(shape)
    return list(types), [column for column, kind in types.items() if kind == "JSON"]


def _format_of(path: Path) -> str:
    name = path.name
    return "parquet" if name.endswith(".parquet") else "ndjson" if ".ndjson" in name else "csv"


def digest(files: Sequence[Path], columns: Sequence[str],
           compared: Sequence[str] | None = None) -> Digest:
    """Rows and row-hash sum of the ``compared`` columns (default all; each read as
    text) over ``files`` of ``columns``, which hold one format; CSV files have a header
    and ``""`` as null, as the stage writes."""
    import duckdb

    from streamer.sinks.stage.config import CsvOptions
    from streamer.sinks.stage.formats import duckdb_reader

    if not files:
        raise BenchError("no output files to check")
    formats = {_format_of(path) for path in files}
    if len(formats) != 1:
        raise BenchError(f"output files of several formats: {sorted(formats)}")
    fmt = formats.pop()
    types = dict.fromkeys(columns, "VARCHAR")
    reader, params = duckdb_reader(fmt, types, CsvOptions(), "store_rejects = false")
    cells = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in compared or columns)
    con = duckdb.connect()
    try:
        rows, total = con.execute(
            f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM (SELECT {cells} FROM {reader}) t",
            {"files": [str(p) for p in files], **params}).fetchone()
    except duckdb.Error as exc:  # not the stage's format: as wrong as a lost record
        first = str(exc).splitlines()[0]
        raise BenchError(f"its output cannot be read as {fmt} of its columns: {first}") from None
    finally:
        con.close()
    return Digest(int(rows), int(total))


def reference_digest(input_path: Path, columns: Sequence[str], nested: Sequence[str] = (),
                     compared: Sequence[str] | None = None) -> Digest:
    """The digest of the ``compared`` columns (default all) of the tight loop's CSV of
    ``input_path`` (its ``columns``, the ``nested`` ones as JSON text), cached in
    ``<input>.digests.json``."""
    import duckdb

    from bench.baselines import tight_loop

    compared = tuple(columns if compared is None else compared)
    cache = input_path.with_name(input_path.name + ".digests.json")
    key = (f"duckdb {duckdb.__version__}: {','.join(columns)}; nested {','.join(nested)}; "
           f"compared {','.join(compared)}")
    known = json.loads(cache.read_text()) if cache.exists() else {}
    if key not in known:
        fd, tmp = tempfile.mkstemp(suffix=".csv", dir=input_path.parent)
        os.close(fd)
        try:
            tight_loop(input_path, tmp, columns, nested)
            known[key] = vars(digest([Path(tmp)], columns, compared))
        finally:
            os.unlink(tmp)
        cache.write_text(json.dumps(known, indent=1))
    return Digest(**known[key])


def check_output(what: str, files: Sequence[Path], columns: Sequence[str],
                 expected: Digest, compared: Sequence[str] | None = None) -> None:
    """Raise ``BenchError`` unless ``files`` hold exactly the expected rows."""
    try:
        got = digest(files, columns, compared)
    except BenchError as exc:
        raise BenchError(f"{what}: {exc}") from None
    if got.rows != expected.rows:
        raise BenchError(f"{what}: {got.rows:,} rows in its output, expected "
                         f"{expected.rows:,} (records lost or duplicated)")
    if got.row_hash_sum != expected.row_hash_sum:
        raise BenchError(f"{what}: {got.rows:,} rows as expected, but not the input's: "
                         "rows lost and others duplicated, or cells changed")


def expect_output(input_path: Path, columns: Sequence[str], nested: Sequence[str] = (),
                  compared: Sequence[str] | None = None
                  ) -> Callable[[str, Sequence[Path]], None]:
    """A check of one run's output files against ``input_path``: ``columns`` are what
    the tight loop writes, ``compared`` (default all) the ones checked (a mapping that
    rewrites some columns leaves them out)."""

    def check(what: str, files: Sequence[Path]) -> None:
        if not files:
            raise BenchError(f"{what}: no output files")
        check_output(what, files, columns,
                     reference_digest(input_path, columns, nested, compared), compared)

    return check


def expect_stage(name: str, input_path: Path, columns: Sequence[str] = (),
                 also: Callable[[Run, Path, int], None] | None = None,
                 **options: Sequence[str]) -> Callable[[Run, Path, int], None]:
    """A ``streamer_scenario`` check: the local stage under the run dir (``stage/``)
    holds every record of ``input_path`` once (``expect_output``'s ``options``; default
    columns: the default shape's); then ``also``."""
    contents = expect_output(input_path, columns or shape_columns()[0], **options)

    def check(run: Run, run_dir: Path, i: int) -> None:
        contents(f"{name} run {i + 1}", data_files(run_dir / "stage"))
        if also:
            also(run, run_dir, i)

    return check
