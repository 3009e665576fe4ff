"""`streamer columns`: inferred paths and types, printed as a config block."""

from __future__ import annotations

import tomllib
from pathlib import Path

from streamer.mapping.infer import columns_block, infer, sample
from streamer.mapping.spec import ColumnSpec


def test_nested_fields_get_paths_and_the_type_every_value_fits() -> None:
    records = [
        {"user": {"id": 7, "name": "a"}, "at": "2024-02-29T10:00:00Z", "v": 1, "ok": True,
         "tags": [1], "odd key": "x", "m": {"a": 1}, "n": None},
        {"user": {"id": 8}, "at": "2024-03-01T10:00:00+01:00", "v": 2.5, "m": "text",
         "mixed": 1},
        {"mixed": "one"},
    ]
    columns = infer(records)
    assert columns == [
        {"name": "user_id", "from": "user.id", "type": "integer"},
        {"name": "user_name", "from": "user.name", "type": "string"},
        {"name": "at", "from": "at", "type": "timestamp", "parse": "iso8601"},
        {"name": "v", "from": "v", "type": "double"},
        {"name": "ok", "from": "ok", "type": "boolean"},
        {"name": "tags", "from": "tags", "type": "json"},
        {"name": "odd_key", "from": '["odd key"]', "type": "string"},
        {"name": "m", "from": "m", "type": "json"},  # an object in one record only
        {"name": "n", "from": "n", "type": "string"},  # only nulls seen
        {"name": "mixed", "from": "mixed", "type": "string"},
    ]
    block = columns_block(columns, "test")
    parsed = tomllib.loads(block)["columns"]
    assert parsed == columns
    assert [ColumnSpec.model_validate(c).name for c in parsed][:2] == ["user_id", "user_name"]


def test_names_stay_distinct_when_case_is_ignored() -> None:
    """A block pasted into a DuckDB-loaded stage: DuckDB's names are
    case-insensitive, so `a` and `A` must not both be column names."""
    columns = infer([{"a": 1, "A": 2, "a_2": 3, "B": {"x": 1}, "b": {"X": 2}}])
    assert [c["name"] for c in columns] == ["a", "A_2", "a_2_2", "B_x", "b_X_2"]
    assert [c["from"] for c in columns] == ["a", "A", "a_2", "B.x", "b.X"]


def test_sample_reads_lines_as_the_sources_do(tmp_path: Path) -> None:
    """A BOM at the start of the file, CRLF ends and blank lines are not bad lines."""
    path = tmp_path / "in.ndjson"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\r\n{"a": 2}\r\n[1]\n{"a": 3}')
    assert sample(str(path), 10) == ([{"a": 1}, {"a": 2}, {"a": 3}], 1)


def test_integers_past_64_bits_are_lines_the_sources_dead_letter(tmp_path: Path) -> None:
    """2^63..2^64-1 (orjson reads them as integers) and beyond (as doubles) are not
    inferred: the sources dead-letter those lines, so no stage column sees them."""
    edges = [2**63 - 1, -(2**63)]
    past = [2**63, 2**64 - 1, 2**64, 2**70, -(2**63) - 1]
    path = tmp_path / "in.ndjson"
    path.write_text("".join(f'{{"n": {v}, "m": {i}}}\n' for i, v in enumerate(edges + past)))
    records, bad = sample(str(path), 100)
    assert (records, bad) == ([{"n": edges[0], "m": 0}, {"n": edges[1], "m": 1}], len(past))
    assert infer(records) == [{"name": "n", "from": "n", "type": "integer"},
                              {"name": "m", "from": "m", "type": "integer"}]


def test_integers_a_double_cannot_hold_exactly_keep_a_column_of_numbers_as_text() -> None:
    """A field with floats and integers is `double` only when each integer is one a
    double holds exactly (|n| <= 2^53); else `string` (each number's exact text).
    Before 2026-12-05 `{"v": 123456789012345678}` beside `{"v": 0.5}` was inferred
    `double` and loaded as 1.2345678901234568e17: the block as printed changed values."""
    exact = [2**53, -(2**53), 3]
    wide = [2**53 + 1, -(2**53) - 1, 2**63 - 1, 123456789012345678]
    for n in exact:
        assert infer([{"v": n}, {"v": 0.5}]) == [{"name": "v", "from": "v", "type": "double"}]
    for n in wide:
        assert infer([{"v": 0.5}, {"v": n}]) == [{"name": "v", "from": "v", "type": "string"}]
        assert infer([{"v": n}, {"v": 1}]) == [{"name": "v", "from": "v", "type": "integer"}]
