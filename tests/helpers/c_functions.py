"""The column mapping's C parts there or hidden, as in an install built without a
compiler: the C typed encoder (`streamer/mapping/_typed.c`, the CSV rows it proves)
and the C timestamp functions (`streamer/mapping/streamer_ts.c`, inside the typed
query's SQL).  The mapping's tests run every way and must give the same bytes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest import mock

from streamer.mapping import c_functions, typed_c
from streamer.sinks.stage.csv_native import NativeCsvEncoder

# the C typed encoder (and the C functions for the records it is unsure of); the C
# functions only (the typed query's SQL with them); neither (the typed query's SQL)
WAYS = ("typed", "c", "sql")


@contextmanager
def c_functions_as(way: str) -> Iterator[None]:
    """Encoders created inside use the ways' C parts or cannot find them."""
    assert way in WAYS
    with ExitStack() as stack:
        if way == "typed":
            assert typed_c.AVAILABLE, "streamer/mapping/_typed.c is not built"
        else:
            stack.enter_context(mock.patch.object(typed_c, "Plan", None))
        if way == "sql":
            missing = Path(c_functions.EXTENSION.parent, "not-built",
                           c_functions.EXTENSION.name)
            stack.enter_context(mock.patch.object(c_functions, "EXTENSION", missing))
        else:
            assert c_functions.EXTENSION.is_file(), "streamer/mapping/streamer_ts.c is not built"
        yield


def native_encoder(columns: Sequence[object], way: str, **options: str) -> NativeCsvEncoder:
    """A native encoder of `columns` (a mapping) with or without the C parts."""
    with c_functions_as(way):
        encoder = NativeCsvEncoder(columns, **options)
    assert encoder.c_functions == (way != "sql")
    if way != "typed":
        assert encoder.typed_c is None
    return encoder
