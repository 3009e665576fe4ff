"""Config models of the loads a stage sink runs on its closed windows (`load`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
)

from streamer.aws.config import DataExchangeLoad, TimestreamLoad
from streamer.config.base import Model


class NoLoad(Model):
    type: Literal["none"]


class DuckDBLoad(Model):
    type: Literal["duckdb"]
    path: str = ""  # default: <data_dir>/streamer.duckdb
    table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    # column -> DuckDB type; columns not listed are VARCHAR
    column_types: dict[str, str] = {}
    # a window's staged files are deleted once it is loaded (committed and journaled):
    # its rows are in the database; the stage would otherwise grow without end
    delete_staged: bool = True
    # DuckDB's memory_limit for the loads ("4GB", "512MiB"); unset: DuckDB's, 80% of the
    # RAM.  `check` refuses one too small for a compressed stage's longest rows
    memory_limit: str = ""

    @field_validator("memory_limit")
    @classmethod
    def _a_size(cls, value: str) -> str:
        from streamer.loaders.duckdb_memory import parse_size

        if value and parse_size(value) is None:
            raise ValueError(f"{value!r} is not a size DuckDB takes (like '4GB' or '512MiB')")
        return value

    @field_validator("column_types")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        """A misspelt type would fail every window at load time: refuse it now."""
        bad = unknown_duckdb_types(value)
        if bad:
            raise ValueError(f"not DuckDB types: {', '.join(bad)}")
        return value


def unknown_duckdb_types(types: dict[str, str]) -> list[str]:
    """`column = 'TYPE'` for each type DuckDB cannot cast NULL to."""
    if not types:
        return []
    import duckdb  # only configs with a DuckDB loader pay for the import

    con = duckdb.connect()
    try:
        bad = []
        for column, kind in types.items():
            try:
                con.execute(f"SELECT CAST(NULL AS {kind})")
            except duckdb.Error:
                bad.append(f"{column} = {kind!r}")
        return bad
    finally:
        con.close()


LoadConfig = Annotated[NoLoad | DuckDBLoad | TimestreamLoad | DataExchangeLoad,
                       Field(discriminator="type")]
