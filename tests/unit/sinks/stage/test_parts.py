"""A batch encoded in parts by several native encoders at once (parts.py): the runs
cover the batch in order, and the rows, the records left out and the fallback are
those of one encoder over the whole batch."""

from __future__ import annotations

import orjson
import pytest

from streamer.core.lines import Lines
from streamer.observability.metrics import SinkStats
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.csv_native import Encoded
from streamer.sinks.stage.encoding import BatchEncoder
from streamer.sinks.stage.parts import MIN_PART_RECORDS, cut, joined
from streamer.sinks.stage.store.local import StagedFile


def block(raws: list[bytes]) -> Lines:
    data = b"".join(raw + b"\n" for raw in raws)
    return Lines.of_block(data, len(raws), max(map(len, raws)))


def lines_of(runs: list[list[Lines]]) -> list[bytes]:
    return [raw for run in runs for segment in run for raw in segment.raws]


def raws(n: int, start: int = 0) -> list[bytes]:
    return [orjson.dumps({"i": i, "s": f"v{i}"}) for i in range(start, start + n)]


def test_a_small_batch_is_one_run() -> None:
    segments = [block(raws(MIN_PART_RECORDS)), Lines.of(raws(MIN_PART_RECORDS - 1))]
    runs = cut(segments, 4)
    assert len(runs) == 1 and runs[0] == segments


@pytest.mark.parametrize("sizes", [[20_000], [5000, 5000, 5000, 5000], [3, 19_990, 7],
                                   [9000, 1, 1, 1, 9000]])
@pytest.mark.parametrize("count", [2, 3, 4])
def test_runs_cover_the_batch_in_order_with_near_equal_counts(sizes: list[int],
                                                              count: int) -> None:
    segments, start = [], 0
    for index, size in enumerate(sizes):  # blocks and lists of lines alike
        part = raws(size, start)
        segments.append(block(part) if index % 2 == 0 else Lines.of(part))
        start += size
    runs = cut(segments, count)
    assert lines_of(runs) == raws(start)
    counts = [sum(segment.count for segment in run) for run in runs]
    assert len(runs) == min(count, start // MIN_PART_RECORDS)
    assert max(counts) - min(counts) < len(runs)
    assert all(segment.count for run in runs for segment in run)


def test_joined_keeps_the_rows_in_order_and_indexes_rejects_over_the_batch() -> None:
    runs = [[Lines.of(raws(3))], [Lines.of(raws(2)), Lines.of(raws(4))]]
    results = [Encoded(b"a\r\n", [(0, "x"), (2, "y")]), Encoded(b"b\r\n", [(1, "z")])]
    encoded = joined(runs, results)
    assert [encoded.rows, *encoded.more_rows] == [b"a\r\n", b"b\r\n"]
    assert encoded.rejected == [(0, "x"), (2, "y"), (4, "z")]


RECORDS = [{"time": 1700000000 + i, "n": i, "f": i / 7, "s": f"a,\"b\"\n{i}",
            "o": None if i % 3 else "x"} for i in range(3 * MIN_PART_RECORDS)]


def encoder(encoders: int, columns: list, **options: object) -> BatchEncoder:
    cfg = StageSinkConfig.model_validate({"type": "stage", "url": "file:///tmp/x/",
                                          "columns": columns, **options})
    return BatchEncoder("st", cfg, SinkStats(), encoders)


async def encode(encoders: int, records: list[dict], columns: list,
                 **options: object) -> tuple[bytes, list[tuple[int, str]], int]:
    enc = encoder(encoders, columns, **options)
    raw = [orjson.dumps(r) for r in records]
    third = len(raw) // 3  # a block, a list of lines, a block: as a coalesced batch
    segments = [block(raw[:third]), Lines.of(raw[third:2 * third]), block(raw[2 * third:])]
    try:
        encoded = await enc.encode(segments, StagedFile(None, "f", 0.0))  # type: ignore[arg-type]
    finally:
        enc.close()
    return (encoded.rows + b"".join(encoded.more_rows), encoded.rejected,
            len(encoded.more_rows))


async def test_parts_write_the_bytes_of_one_encoder() -> None:
    columns = ["time", "n", "f", "s", "o"]
    one, _, split_one = await encode(1, RECORDS, columns)
    three, _, split_three = await encode(3, RECORDS, columns)
    python, _, _ = await encode(1, RECORDS, columns, native_encoding=False)
    assert (split_one, split_three) == (0, 2)
    assert three == one == python
    last = len(RECORDS) - 1
    assert three.startswith(b'1700000000,0,0.0,"a,""b""\n0",x\r\n')
    assert three.endswith(f'{1700000000 + last},{last},{last / 7!r},"a,""b""\n{last}",\r\n'
                          .encode())


async def test_records_left_out_are_named_by_their_index_in_the_batch() -> None:
    columns = ["s", {"name": "n", "type": "integer"}]
    records = [dict(r, n="bad") if i % 5000 == 7 else r for i, r in enumerate(RECORDS)]
    one, rejected_one, _ = await encode(1, records, columns)
    two, rejected_two, split = await encode(2, records, columns)
    assert split == 1
    assert two == one
    assert rejected_two == rejected_one == [(7, "column n: not an integer"),
                                            (5007, "column n: not an integer"),
                                            (10007, "column n: not an integer")]


async def test_a_part_duckdb_refuses_sends_the_whole_batch_per_record() -> None:
    # in the last part only: a nested number DuckDB writes otherwise (1e+21)
    records = [*RECORDS[:-1], {"time": 1, "n": 1, "o": {"k": 1e21}}]
    columns = ["time", "n", "f", "s", "o"]
    two, _, split = await encode(2, records, columns)
    python, _, _ = await encode(1, records, columns, native_encoding=False)
    assert split == 0  # one batch of rows, from the per-record encoder
    assert two == python
    assert two.endswith(b'1,1,,,"{""k"":1e+21}"\r\n')
