"""`check --connect` probes of a stage sink: where it stages, and where it loads."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from streamer.aws.config import DataExchangeLoad, TimestreamLoad
from streamer.config.connect import Probe
from streamer.datadir.layout import DataDir
from streamer.loaders.config import DuckDBLoad
from streamer.sinks.stage.config import StageSinkConfig


def stage_probes(sink: StageSinkConfig, data_path: Path) -> list[tuple[str, Probe]]:
    """(what, probe) for the stage, then for its load target when it has one."""
    from streamer.aws.check import aws_load_target_exists, s3_stage_writable

    probes: list[tuple[str, Probe]] = []
    if urlparse(sink.url).scheme == "s3":
        probes.append(("stage s3", lambda: s3_stage_writable(sink.url, sink.s3)))
    else:
        probes.append(("stage local",
                       lambda: asyncio.to_thread(directory_writable, sink.directory)))
    load = sink.load
    if isinstance(load, DuckDBLoad):
        database = Path(load.path) if load.path else DataDir(data_path).duckdb
        probes.append(("load duckdb",
                       lambda: asyncio.to_thread(duckdb_file_usable, database)))
    elif isinstance(load, TimestreamLoad | DataExchangeLoad):
        probes.append((f"load {load.type}", lambda: aws_load_target_exists(load, sink.s3)))
    return probes


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def directory_writable(directory: Path) -> tuple[bool, str]:
    """A probe file created and removed in `directory`; a directory still to be
    created needs its nearest existing ancestor writable."""
    if not directory.exists():
        ancestor = _existing_ancestor(directory)
        if ancestor.is_dir() and os.access(ancestor, os.W_OK | os.X_OK):
            return True, f"{directory} will be created in {ancestor}"
        return False, f"{directory} cannot be created: {ancestor} is not a writable directory"
    if not directory.is_dir():
        return False, f"{directory} is not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".streamer-check-"):
            pass
    except OSError as exc:
        return False, f"{directory} is not writable: {exc.strerror or type(exc).__name__}"
    return True, f"{directory} writable"


# every DuckDB database file (also an empty database) has this at bytes 8-11
DUCKDB_MAGIC = b"DUCK"
DUCKDB_MAGIC_END = 12


def duckdb_file_usable(database: Path) -> tuple[bool, str]:
    """The database file readable and writable, or creatable where it will be."""
    if database.is_dir():
        return False, f"{database} is a directory, not a DuckDB database file"
    if database.exists():
        if not os.access(database, os.R_OK | os.W_OK):
            return False, f"{database} is not readable and writable"
        try:
            with open(database, "rb") as file:
                header = file.read(DUCKDB_MAGIC_END)
        except OSError as exc:
            return False, f"{database} cannot be read: {exc.strerror or type(exc).__name__}"
        if header[DUCKDB_MAGIC_END - len(DUCKDB_MAGIC):] != DUCKDB_MAGIC:
            return False, f"{database} is not a DuckDB database (another kind of file)"
        if not os.access(database.parent, os.W_OK | os.X_OK):  # each commit writes it
            return False, (f"{database.parent} is not writable: DuckDB writes "
                           f"{database.name}.wal beside the database")
        return True, f"{database} readable and writable"
    ok, detail = directory_writable(database.parent)
    return ok, (f"{database} can be created" if ok else detail)
