"""Test records, as NDJSON and as the stage sink's CSV cells; what the TD emulator stored."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from bench.gen import FIELDS, iter_records
from tests.fixtures.td import TDEmulator

BENCH_COLUMNS = list(FIELDS)  # the fields of bench.gen records, in order
COLUMNS = ["id", *BENCH_COLUMNS]  # the fields of make_records records


def make_records(n: int, seed: int = 7, start: int = 0, **extra: Any) -> list[dict[str, Any]]:
    """Realistic records (bench.gen), each with a unique integer `id` first."""
    return [{"id": start + i, **r, **extra} for i, r in enumerate(iter_records(n, seed))]


def ndjson(records: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


def write_ndjson(path: Path, records: Iterable[dict[str, Any]], mode: str = "wb") -> int:
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    with open(path, mode) as fh:
        fh.write(data)
    return len(data)


def multiset(records: Iterable[dict[str, Any]]) -> Counter[bytes]:
    """Records as a multiset of their canonical JSON (key order ignored)."""
    return Counter(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


def stored(emu: TDEmulator, **filters: str) -> list[dict[str, Any]]:
    """The records the TD emulator accepted, in acceptance order."""
    return [r["record"] for r in emu.records(**filters)]


def csv_cell(value: Any, null_value: str = "") -> str:
    """What the stage sink writes for a JSON value (streamer.sinks.stage.csv_python.cell)."""
    if value is None:
        return null_value
    if isinstance(value, bool | dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def expected_rows(records: Iterable[dict[str, Any]], columns: list[str],
                  null_value: str = "") -> list[list[str]]:
    return [[csv_cell(r.get(c), null_value) for c in columns] for r in records]
