"""Record mapping: which value of a record goes into which column, as which type.

One config model (`spec.ColumnSpec`), two ways to run it that give the same
cells and the same reasons: per record in Python (`values.RecordMapper`) and
per batch as DuckDB SQL (`sql.MappingQuery`)."""
