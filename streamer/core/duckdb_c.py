"""DuckDB's C extension alone: 20 ms of CPU to import, where its Python package costs
0.13 s more (every start pays it) for what only a Parquet stage's Arrow fetch uses
(`sql`, relations). Import `duckdb` from here; the package itself where its relation
API is needed (csv_native.py `_arrow_table`)."""

try:
    import _duckdb as duckdb
except ImportError:  # a DuckDB whose C extension lives inside its package
    import duckdb

__all__ = ["duckdb"]
