"""The mapping's typed encoder in C (`_typed.c`, built by setup.py; issue #18): one pass
over a batch's NDJSON bytes gives the CSV rows of the records whose cells it proves,
and the indexes of the others ("unsure"), which the native encoder maps per record
(a few) or with the typed and full queries, and puts back in place (csv_mapped.py,
csv_rows.py).

Each row it writes is the per-record encoder's (values.py, csv_python.py), byte for
byte; it proves forms rather than emulating leniencies, and anything else is unsure:

* the record: one JSON object on its line, checked whole (strings closed, escapes and
  UTF-8 valid, numbers in JSON's grammar, containers balanced), an object on the
  paths holding no key with a `\\` (it might spell a mapped key) and no mapped key
  twice; a path through a value of another kind (the SQL names it) is unsure;
* strings: their bytes (the decoded text, re-encoded) when without a `\\`, else
  their escapes decoded (`\\u0000`, a surrogate not in a pair: unsure); a string
  holding CR or LF is unsure (rows are told apart by their line ends);
* integers: `-?(0|[1-9][0-9]*)` in int64, not `-0` (as `str(int)` writes it back);
* doubles: `-?D[.F]`, no exponent, at most 15 characters, no leading zero, F without
  trailing zeros (or just `0`), 1e-4 <= |x| < 1e14: the one decimal of at most 15
  significant digits that reads as that double, so `repr(float)` is the text
  itself (`.0` added to an integer), in its fixed notation;
* booleans: `true` / `false`, as JSON or as a string; timestamps: sql_typed.FAST_ISO's
  form with a real date (timestamp_text.h, shared with streamer_ts.c), or an epoch
  as an integer of the forms above, in years 1-9999, written as timestamps.render;
* missing values (absent, null, under an absent or null parent, past an array's end):
  the column's default or `null_value`, rendered here by Python's own csv writer;
  a missing required value is unsure.

Cells are quoted as Python's csv writer does (QUOTE_MINIMAL: a cell holding the
separator, the quote, CR or LF, quotes doubled).  No plan (None) for what it does
not handle: json columns, `.`, strptime patterns, a path both a leaf and a container,
a separator or quote not one ASCII character, a constant or missing cell holding a
line end; then the typed query's SQL runs as before."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from streamer.mapping.spec import ColumnSpec
from streamer.mapping.timestamps import EPOCH_UNITS
from streamer.mapping.values import converter, text

try:
    from streamer.mapping._typed import Plan
except ImportError:  # not built: no compiler at install time
    Plan = None

AVAILABLE = Plan is not None
OBJECT, ARRAY, LEAF = 0, 1, 2
# _typed.c's conversions
OPS = {"raw": 1, "string": 1, "integer": 2, "double": 3, "boolean": 4}
CONSTANT, ISO, EPOCH, OUT_ISO = 0, 5, 6, -1


class _Tree:
    """The paths as nodes: (kind, leaf, [(key bytes | index, child)]), root first."""

    def __init__(self) -> None:
        self.nodes: list[list[Any]] = [[OBJECT, -1, {}]]
        self.leaves: dict[tuple[object, ...], int] = {}

    def leaf(self, steps: tuple[object, ...]) -> int | None:
        """The leaf of `steps` (added), None when it conflicts with another path."""
        if steps in self.leaves:
            return self.leaves[steps]
        node = 0
        for depth, step in enumerate(steps):
            kind = ARRAY if type(step) is int else OBJECT
            current = self.nodes[node]
            if current[0] != kind:
                return None
            key = step if kind == ARRAY else str(step).encode()
            child = current[2].get(key)
            last = depth == len(steps) - 1
            if child is None:
                child = len(self.nodes)
                self.nodes.append([LEAF if last else (
                    ARRAY if type(steps[depth + 1]) is int else OBJECT), -1, {}])
                current[2][key] = child
            elif (self.nodes[child][0] == LEAF) != last:
                return None
            node = child
        self.leaves[steps] = len(self.leaves)
        self.nodes[node][1] = self.leaves[steps]
        return self.leaves[steps]

    def plan_nodes(self) -> list[tuple[int, int, list[tuple[bytes | int, int]]]]:
        return [(kind, leaf, list(edges.items())) for kind, leaf, edges in self.nodes]


def _cell_writer(separator: str, quote: str) -> Any:
    dialect = {"delimiter": separator, "quotechar": quote, "doublequote": True,
               "lineterminator": "\r\n", "quoting": csv.QUOTE_MINIMAL}

    def cell(value: str) -> bytes:
        """`value` as Python's csv writes it in a row of two or more cells."""
        buf = io.StringIO()
        csv.writer(buf, **dialect).writerow([value, "x"])
        return buf.getvalue()[:-len(separator + "x\r\n")].encode()
    return cell


def typed_plan(specs: Sequence[ColumnSpec], null_value: str, separator: str = ",",
               quote: str = '"') -> Any:
    """The C plan of a mapping, or None (not built, or a mapping it does not handle)."""
    if Plan is None or any(len(c) != 1 or not c.isascii() or c in "\r\n"
                           for c in (separator, quote)) or separator == quote:
        return None
    cell = _cell_writer(separator, quote)
    tree, columns = _Tree(), []
    for spec in specs:
        fixed = spec.value if spec.value is not None else spec.default
        missing = null_value if fixed is None else text(converter(spec)(fixed))
        if "\r" in missing or "\n" in missing:  # rows told apart by their line ends
            return None
        if spec.value is not None:
            columns.append((CONSTANT, -1, False, 0, 0, cell(missing)))
            continue
        if not spec.steps or spec.type == "json":
            return None
        leaf = tree.leaf(spec.steps)
        if leaf is None:
            return None
        op, unit, out = OPS.get(spec.type, -1), 0, 0
        if spec.type == "timestamp":
            out = OUT_ISO if spec.format == "iso8601" else EPOCH_UNITS[spec.format]
            if spec.parse == "iso8601":
                op = ISO
            elif spec.parse in EPOCH_UNITS:
                op, unit = EPOCH, EPOCH_UNITS[spec.parse]
            else:
                return None
        assert op >= 0, spec.type
        columns.append((op, leaf, spec.required, unit, out, cell(missing)))
    if not tree.leaves:
        return None
    return Plan(tree.plan_nodes(), columns, separator.encode(), quote.encode())
