"""Which DuckDB errors are retried: the disk, I/O and locks; not the data or the SQL."""

import duckdb
import pytest

from streamer.loaders.base import PermanentLoadError
from streamer.loaders.duckdb_errors import classified, is_transient


@pytest.mark.parametrize("exc", [
    # the COMMIT on a full disk (not the ROLLBACK's "no transaction is active" after it)
    duckdb.TransactionException('TransactionContext Error: Failed to commit: Could not '
                                'write file "/d/x.duckdb.wal": No space left on device'),
    duckdb.IOException('IO Error: Could not write file "/d/x.duckdb": No space left on device'),
    duckdb.IOException('IO Error: Could not set lock on file "/d/x.duckdb": Conflicting lock '
                       'is held in python3 (PID 12)'),
    duckdb.FatalException("FATAL Error: database has been invalidated because of a previous "
                          "fatal error: Input/output error"),
    duckdb.InvalidInputException("Could not fsync file: Disk quota exceeded"),
])
def test_disk_io_and_lock_errors_are_retried(exc):
    assert is_transient(exc)
    assert classified(exc, "w-1") is exc


@pytest.mark.parametrize("exc", [
    duckdb.ConversionException("Conversion Error: CSV Error on Line: 2347"),
    duckdb.BinderException('Binder Error: table events has 3 columns but 4 values'),
    duckdb.IOException('IO Error: No files found that match the pattern "/s/w/part-1.csv"'),
    duckdb.IOException("IO Error: Cannot open file \"/s/w/part-1.csv\": No such file or "
                       "directory"),
    duckdb.IOException('IO Error: The file "/d/app.log" exists, but it is not a valid '
                       'DuckDB database file!'),
    duckdb.IOException('IO Error: Trying to read a database file with version number 99, '
                       'but we can only read version 64'),
    duckdb.IOException('IO Error: Could not read from file "/var/lib/streamer": Is a '
                       'directory'),
])
def test_data_sql_and_missing_input_errors_fail_the_window(exc):
    assert not is_transient(exc)
    error = classified(exc, "w-1")
    assert isinstance(error, PermanentLoadError)
    assert "w-1" in str(error) and str(exc).splitlines()[0] in str(error)
