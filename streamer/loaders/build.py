"""The stage sink's `load` table -> a loader object (None: files stay staged)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamer.aws.config import DataExchangeLoad, TimestreamLoad
from streamer.loaders.base import Loader
from streamer.loaders.config import DuckDBLoad
from streamer.pipeline.context import Context
from streamer.sinks.stage.config import StageSinkConfig

if TYPE_CHECKING:
    from streamer.aws.clients import AwsClients


def build_loader(name: str, cfg: StageSinkConfig, context: Context,
                 clients: AwsClients | None) -> Loader | None:
    """`clients` is set for s3:// stages, the only ones AWS loaders accept."""
    load = cfg.load
    stats = context.metrics.sink(name)
    if isinstance(load, DuckDBLoad):
        from streamer.loaders.duckdb import DuckDBLoader
        from streamer.mapping.types import duckdb_types

        # mapped columns get their type's table column unless column_types names one
        load = load.model_copy(update={"column_types": {**duckdb_types(cfg.columns),
                                                        **load.column_types}})
        from streamer.loaders.duckdb_memory import longest_row

        path = load.path or context.data_dir.duckdb
        return DuckDBLoader(load, cfg.column_names, cfg.csv, context.data_dir.duckdb, name,
                            context.dead_letters, per_file=cfg.exactly_once, fmt=cfg.format,
                            longest_row=longest_row(context.longest_record, len(cfg.columns)),
                            lock=context.database_locks.of(path))
    if isinstance(load, TimestreamLoad):
        from streamer.loaders.timestream import TimestreamLoader
        assert clients is not None
        return TimestreamLoader(load, cfg, clients, stats, name, context.dead_letters)
    if isinstance(load, DataExchangeLoad):
        from streamer.loaders.dataexchange import DataExchangeLoader
        assert clients is not None
        return DataExchangeLoader(load, cfg, clients, stats, name)
    return None
