"""Whether a plain batch's nested values are proven to be written by DuckDB as the
per-record encoder writes them, by one pass of native code over the batch's NDJSON
(`_nested.c`, built with the package): the native query then runs without its
nested checks (`streamer_nested_differs` in csv_native.py, 10-14 us a 2 KB record of
nested logs, measured 2026-12-04).

The pass answers "maybe" (False) where the SQL checks may find a difference,
below the top level (an object or array inside a record, at any depth):

* a key twice in one object.  Keys are compared as their bytes between the quotes:
  the per-record encoder decodes them (orjson), so `"a"` and `"\\u0061"` are one
  key, which DuckDB writes twice.  A key holding an escape is therefore "maybe";
  two different spellings of one key are never taken for two keys;
* a number yyjson (DuckDB) may print otherwise than orjson: any exponent, a
  fraction with 16 or more integer digits or below 1e-5 (`0.00000...`), an integer
  of 19 or more digits, `-0`;
* a string with a `\\u0000`-`\\u001f` escape (yyjson writes upper-case hex) or a
  byte below 0x20;
* anything the pass does not expect (it never assumes the bytes are JSON).

Without the extension (an install without a C compiler) every batch with a nested
value takes the SQL checks, as before."""

from __future__ import annotations

from collections.abc import Sequence

from streamer.sinks.stage.batch_scan import Buffer

try:
    from streamer.sinks.stage._nested import clean as _clean
except ImportError:  # not built: no compiler at install time
    _clean = None

AVAILABLE = _clean is not None


def nested_proven_alike(buffers: Sequence[Buffer]) -> bool:
    """True when every nested value in `buffers` (whole NDJSON lines) is proven
    to render alike; False for "maybe" and when the extension is not built."""
    return _clean is not None and _clean(buffers)
