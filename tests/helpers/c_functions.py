"""The column mapping's C timestamp functions (`streamer/mapping/streamer_ts.c`) there
or hidden, as in an install built without a compiler: the typed query's tests run
both ways and must give the same bytes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from streamer.mapping import c_functions
from streamer.sinks.stage.csv_native import NativeCsvEncoder

WAYS = ("c", "sql")  # the C functions loaded; hidden (the typed query's SQL)


@contextmanager
def c_functions_as(way: str) -> Iterator[None]:
    """Encoders created inside use the C functions (`c`) or cannot find them (`sql`)."""
    assert way in WAYS
    if way == "c":
        assert c_functions.EXTENSION.is_file(), "streamer/mapping/streamer_ts.c is not built"
        yield
        return
    missing = Path(c_functions.EXTENSION.parent, "not-built", c_functions.EXTENSION.name)
    with mock.patch.object(c_functions, "EXTENSION", missing):
        yield


def native_encoder(columns: Sequence[object], way: str, **options: str) -> NativeCsvEncoder:
    """A native encoder of `columns` (a mapping) with or without the C functions."""
    with c_functions_as(way):
        encoder = NativeCsvEncoder(columns, **options)
    assert encoder.c_functions == (way == "c")
    return encoder
