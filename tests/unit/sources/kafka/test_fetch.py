"""The block reader (sources/kafka/fetch.py) on record batches built by aiokafka's own
builder, and pinned against the aiokafka internals it uses: if aiokafka changes
`FetchResult` / `PartitionRecords` / where the fetcher builds its `MemoryRecords`
under it, these tests fail."""

from __future__ import annotations

import collections
import struct
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c

from streamer.sources.kafka.fetch import (
    AIOKAFKA_FIELDS,
    FetchedBlock,
    KeptRecords,
    _BlockBuffer,
    _read_blocks,
    blocks_of,
    install_block_reader,
    keep_fetched_bytes,
)

TP = TopicPartition("t", 0)
ATTRIBUTES_AT, CRC_AT, CONTROL_BIT = 21, 17, 0x20


def batch(base: int, deltas: list[int], values: list[bytes | None], *,
          control: bool = False) -> bytes:
    """One v2 record batch at `base`, its records at base + delta."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=-1, producer_epoch=-1,
                                        base_sequence=-1, batch_size=1 << 20)
    for delta, value in zip(deltas, values, strict=True):
        builder.append(offset=delta, timestamp=None, key=None, value=value, headers=[])
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, base)
    if control:
        attributes = struct.unpack_from(">h", data, ATTRIBUTES_AT)[0] | CONTROL_BIT
        struct.pack_into(">h", data, ATTRIBUTES_AT, attributes)
        struct.pack_into(">I", data, CRC_AT, calc_crc32c(bytes(data[ATTRIBUTES_AT:])))
    return bytes(data)


def values(n: int, start: int = 0) -> list[bytes | None]:
    return [b'{"i": %d}' % i for i in range(start, start + n)]


def transactional(base: int, values: list[bytes], producer_id: int, *,
                  marker: bytes | None = None) -> bytes:
    """A transactional v2 batch of `producer_id` at `base`, or its control batch
    holding `marker` (the control record's key) when given."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=1,
                                        producer_id=producer_id, producer_epoch=0,
                                        base_sequence=0, batch_size=1 << 20)
    for delta, value in enumerate(values):
        builder.append(offset=delta, timestamp=None, key=marker, value=value, headers=[])
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, base)
    if marker is not None:
        attributes = struct.unpack_from(">h", data, ATTRIBUTES_AT)[0] | CONTROL_BIT
        struct.pack_into(">h", data, ATTRIBUTES_AT, attributes)
        struct.pack_into(">I", data, CRC_AT, calc_crc32c(bytes(data[ATTRIBUTES_AT:])))
    return bytes(data)


def partition_records(data: bytes, position: int, kept: bool = True,
                      isolation: int = aiokafka_fetcher.READ_UNCOMMITTED,
                      aborted: list[tuple[int, int]] | None = None) -> Any:
    """aiokafka's own PartitionRecords of a fetch response's record set, as the
    fetcher builds it once the block reader is installed (`KeptRecords`) or before;
    `aborted`: the fetch response's aborted transactions (producer id, first offset)."""
    records = KeptRecords(data) if kept else MemoryRecords(data)
    return aiokafka_fetcher.PartitionRecords(TP, records, aborted or [], position, None,
                                             None, True, isolation)


def read(data: bytes, position: int = 0, limit: int = 100_000,
         gappy: set[TopicPartition] | None = None,
         kept: bool = True) -> tuple[list[FetchedBlock], int]:
    records = partition_records(data, position, kept)
    blocks = list(_read_blocks(records, limit, set() if gappy is None else gappy))
    return blocks, records.next_fetch_offset


def reference(data: bytes, position: int = 0) -> list[tuple[int, bytes | None]]:
    """What aiokafka's per-message reader makes of the same bytes."""
    return [(m.offset, m.value) for m in partition_records(data, position)]


def pairs(block: FetchedBlock) -> list[tuple[int, bytes | None]]:
    return [(block.offset_of(i), v) for i, v in enumerate(block.values)]


def test_batches_in_a_row_are_one_block_of_consecutive_offsets() -> None:
    data = batch(100, list(range(3)), values(3)) + batch(103, list(range(4)), values(4, 3))
    (block,), position = read(data, 100)
    assert block.values == values(7)
    assert (block.first, block.last, block.offsets) == (100, 106, None)
    assert position == 107
    assert pairs(block) == reference(data, 100)


def test_a_fetch_from_inside_a_batch_skips_what_is_before_the_position() -> None:
    data = batch(100, list(range(5)), values(5)) + batch(105, [0, 1], values(2, 5))
    (block,), position = read(data, 103)
    assert block.values == values(4, 3)
    assert (block.first, block.last, position) == (103, 106, 107)
    assert pairs(block) == reference(data, 103)


def test_batches_with_gaps_between_them_list_their_offsets() -> None:
    data = batch(10, [0, 1], values(2)) + batch(20, [0, 1], values(2, 2))
    (block,), position = read(data, 10)
    assert (block.values, block.offsets, position) == (values(4), [10, 11, 20, 21], 22)
    assert pairs(block) == reference(data, 10)


def test_a_batch_compacted_inside_cuts_the_block_and_its_partition_goes_record_by_record(
        ) -> None:
    head = batch(0, [0, 1], values(2, 100))
    # offsets 10, 11, 13 (12 compacted away), then a batch at 20 (14-19 gone)
    data = (batch(10, [0, 1, 3], values(3)) + batch(20, [0, 1], values(2, 3))
            + batch(22, [0], values(1, 5)))
    gappy: set[TopicPartition] = set()
    (block,), position = read(head + data, 0, gappy=gappy)
    assert (block.values, block.offsets, position) == (values(2, 100), None, 2)
    assert gappy == {TP}
    (block,), position = read(data, 10, gappy=gappy)
    assert block.values == values(6)
    assert block.offsets == [10, 11, 13, 20, 21, 22]
    assert pairs(block) == reference(data, 10)
    assert position == 23
    # the first fetch of a partition not known to be compacted: nothing, read again
    assert read(data, 10) == ([], 10)
    assert [block.index_of(o) for o in (10, 12, 13, 14, 20, 23)] == [0, 2, 2, 3, 3, 6]


def test_control_batches_and_tombstones() -> None:
    data = (batch(0, [0, 1], [b'{"a": 1}', None]) + batch(2, [0], [b""], control=True)
            + batch(3, [0], [b'{"b": 2}']))
    (block,), position = read(data)
    assert block.values == [b'{"a": 1}', None, b'{"b": 2}']
    assert block.offsets == [0, 1, 3]
    assert position == 4
    kept = block.without_tombstones()
    assert (kept.values, kept.offsets) == ([b'{"a": 1}', b'{"b": 2}'], [0, 3])


def test_only_control_batches_yield_nothing_but_move_the_position() -> None:
    blocks, position = read(batch(7, [0], [b""], control=True))
    assert (blocks, position) == ([], 8)


def test_a_fetch_beyond_the_limit_is_cut_and_the_position_stops_there() -> None:
    data = batch(0, list(range(6)), values(6)) + batch(6, list(range(6)), values(6, 6))
    (block,), position = read(data, limit=8)
    assert (block.values, block.first, position) == (values(8), 0, 8)
    # the next fetch starts inside the second batch
    (rest,), position = read(data[len(batch(0, list(range(6)), values(6))):], 8)
    assert (rest.values, rest.first, position) == (values(4, 8), 8, 12)


def test_v1_message_sets_are_read_record_by_record() -> None:
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    for i, value in enumerate(values(4)):
        builder.append(5 + i, timestamp=None, key=None, value=value)
    data = bytes(builder.build())
    (block,), position = read(data, 6)
    assert (block.values, block.first, position) == (values(3, 1), 6, 9)
    assert pairs(block) == reference(data, 6)


def corrupt(data: bytes, at: int) -> bytes:
    flipped = bytearray(data)
    flipped[at] ^= 0xFF
    return bytes(flipped)


@pytest.mark.parametrize("kept", [True, False], ids=["kept bytes", "aiokafka's check"])
def test_a_corrupt_batch_raises_as_aiokafka_does(kept: bool) -> None:
    with pytest.raises(CorruptRecordException):
        read(corrupt(batch(0, [0, 1], values(2)), -3), kept=kept)


@pytest.mark.parametrize("where", [ATTRIBUTES_AT, -1, CRC_AT], ids=["attributes", "last byte",
                                                                    "stored crc"])
def test_the_kept_bytes_check_finds_a_corrupt_batch_after_good_ones(where: int) -> None:
    """Each batch is checked over its own bytes: the third of three, corrupt anywhere
    its CRC covers (or in the CRC itself), raises; none of the fetch is handed out."""
    good = batch(0, [0, 1], values(2)) + batch(2, [0, 1, 2], values(3, 2))
    bad = batch(5, [0], values(1, 5))
    records = partition_records(good + corrupt(bad, where if where >= 0 else len(bad) - 1), 0)
    with pytest.raises(CorruptRecordException):
        list(_read_blocks(records, 100_000, set()))
    assert records.next_fetch_offset == 0  # the good batches' records are fetched again
    # the same bytes unharmed pass, with every value, as aiokafka reads them
    (block,), position = read(good + bad)
    assert (block.values, position) == (values(6), 6)
    assert pairs(block) == reference(good + bad)


def test_the_check_reads_the_kept_bytes_of_each_batch() -> None:
    """The CRC is computed over the kept bytes where each batch starts in them (not
    left to aiokafka): kept bytes corrupt in the third batch's body raise although
    the bytes aiokafka reads are sound."""
    good = (batch(0, [0, 1], values(2)) + batch(2, [0, 1, 2], values(3, 2))
            + batch(5, [0, 1], values(2, 5)))
    records = partition_records(good, 0)
    records._records.raw = corrupt(good, len(good) - 4)
    with pytest.raises(CorruptRecordException):
        list(_read_blocks(records, 100_000, set()))
    records = partition_records(good, 0)
    records._records.raw = corrupt(good, 30)  # the first batch's records
    with pytest.raises(CorruptRecordException):
        list(_read_blocks(records, 100_000, set()))


def test_a_truncated_last_batch_is_left_out_of_the_check_as_aiokafka_leaves_it() -> None:
    """A fetch may end inside a batch (the broker cuts at its byte limit)."""
    data = batch(0, [0, 1], values(2)) + batch(2, [0, 1], values(2, 2))[:-5]
    (block,), position = read(data)
    assert (block.values, position) == (values(2), 2)


def test_legacy_message_sets_are_checked_by_aiokafka_with_kept_bytes() -> None:
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    for i, value in enumerate(values(2)):
        builder.append(i, timestamp=None, key=None, value=value)
    data = bytes(builder.build())
    assert read(data)[0][0].values == values(2)
    with pytest.raises(CorruptRecordException):
        read(corrupt(data, len(data) - 2))


def test_split_and_index_of_contiguous() -> None:
    block = FetchedBlock(values(5), 40)
    head, tail = block.split(block.index_of(42))
    assert (head.values, head.first, head.last) == (values(2), 40, 41)
    assert (tail.values, tail.first, tail.last) == (values(3, 2), 42, 44)
    assert [block.index_of(o) for o in (30, 40, 44, 45, 99)] == [0, 0, 4, 5, 5]


def test_split_with_listed_offsets_and_an_empty_head() -> None:
    block = FetchedBlock(values(3), 5, [5, 9, 12])
    head, tail = block.split(block.index_of(8))
    assert (head.values, head.offsets, tail.values, tail.offsets) == (
        values(1), [5], values(2, 1), [9, 12])
    empty, whole = tail.split(tail.index_of(7))
    assert (empty.values, whole.values, whole.offsets) == ([], values(2, 1), [9, 12])


def test_a_fence_among_trailing_tombstones_leaves_an_empty_tail() -> None:
    block = FetchedBlock([*values(2), None, None], 10).without_tombstones()
    head, tail = block.split(block.index_of(12))
    assert (head.values, head.offsets, head.last) == (values(2), [10, 11], 11)
    assert (tail.values, tail.offsets, tail.first) == ([], [], 12)
    nothing = FetchedBlock([None, None], 20).without_tombstones()
    before, after = nothing.split(nothing.index_of(21))
    assert (before.values, after.values, before.first, after.first) == ([], [], 20, 20)


def consumer_record(offset: int, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(TP.topic, TP.partition, offset, 0, 0, None, value, None, -1,
                          len(value or b""), ())


def test_consumer_records_become_a_block_without_the_block_reader() -> None:
    (block,) = blocks_of([consumer_record(o, v) for o, v in zip((3, 4, 5), values(3), strict=True)])
    assert (block.values, block.first, block.offsets) == (values(3), 3, None)
    (gappy,) = blocks_of([consumer_record(o, v) for o, v in zip((3, 7), values(2), strict=True)])
    assert (gappy.values, gappy.offsets, gappy.last) == (values(2), [3, 7], 7)
    assert blocks_of([]) == []


class Assignment:
    """What aiokafka's FetchResult asks of a subscription's assignment."""

    def __init__(self, position: int) -> None:
        self.active = True
        self.state = SimpleNamespace(paused=False, position=position)
        self.state.consumed_to = lambda offset: setattr(self.state, "position", offset)

    def state_value(self, _tp: TopicPartition) -> Any:
        return self.state


def test_aiokafka_fetch_results_go_through_the_block_buffer() -> None:
    """Pins aiokafka: FetchResult.getall, as `fetched_records` calls it, returns the
    block reader's one block and moves the position to the end of the fetch."""
    assert {"_partition_records"} <= set(aiokafka_fetcher.FetchResult.__init__.__code__.co_names)
    data = batch(50, list(range(4)), values(4)) + batch(54, [0, 1], values(2, 4))
    assignment = Assignment(52)
    buffer = _BlockBuffer(collections.OrderedDict(), 100_000)
    buffer[TP] = aiokafka_fetcher.FetchResult(
        TP, assignment=assignment, partition_records=partition_records(data, 52), backoff=0)
    result = buffer[TP]
    (block,) = result.getall(100_000)
    assert (block.values, block.first, block.last) == (values(4, 2), 52, 55)
    assert assignment.state.position == 56
    assert not result.has_more()


ABORT = struct.pack(">hh", 0, 0)  # a control record's key: version 0, type 0 (abort)
COMMIT = struct.pack(">hh", 0, 1)


@pytest.mark.parametrize("isolation", [aiokafka_fetcher.READ_UNCOMMITTED,
                                       aiokafka_fetcher.READ_COMMITTED])
def test_a_fetch_naming_no_aborted_transaction_is_one_block_either_way(isolation: int) -> None:
    """read_committed (the source's default) keeps the block reader for what a topic
    without aborted transactions fetches: committed transactions included (their
    commit marker skipped as aiokafka skips it)."""
    data = (batch(0, [0, 1], values(2)) + transactional(2, values(2, 2), 7)
            + transactional(4, [b""], 7, marker=COMMIT) + batch(5, [0], values(1, 4)))
    assignment = Assignment(0)
    buffer = _BlockBuffer(collections.OrderedDict(), 100_000)
    buffer[TP] = aiokafka_fetcher.FetchResult(
        TP, assignment=assignment,
        partition_records=partition_records(data, 0, isolation=isolation), backoff=0)
    (block,) = buffer[TP].getall(100_000)
    assert type(block) is FetchedBlock
    assert pairs(block) == [(0, b'{"i": 0}'), (1, b'{"i": 1}'), (2, b'{"i": 2}'),
                            (3, b'{"i": 3}'), (5, b'{"i": 4}')]
    assert assignment.state.position == 6


def test_a_read_committed_fetch_naming_an_aborted_transaction_is_left_to_aiokafka() -> None:
    """Records of an aborted transaction never existed: aiokafka's own reader skips
    them (the block reader would hand them out), then the records after them."""
    data = (batch(0, [0], values(1)) + transactional(1, [b'{"aborted": 1}'] * 2, 9)
            + transactional(3, [b""], 9, marker=ABORT) + batch(4, [0], values(1, 1)))
    assignment = Assignment(0)
    buffer = _BlockBuffer(collections.OrderedDict(), 100_000)
    buffer[TP] = aiokafka_fetcher.FetchResult(
        TP, assignment=assignment, partition_records=partition_records(
            data, 0, isolation=aiokafka_fetcher.READ_COMMITTED, aborted=[(9, 1)]), backoff=0)
    got = buffer[TP].getall(100_000)
    assert all(type(m) is ConsumerRecord for m in got)
    assert [(m.offset, m.value) for m in got] == [(0, b'{"i": 0}'), (4, b'{"i": 1}')]
    (block,) = blocks_of(got)
    assert pairs(block) == [(0, b'{"i": 0}'), (4, b'{"i": 1}')]
    assert assignment.state.position == 5


def test_a_corrupt_fetch_moves_no_position_and_is_fetched_again() -> None:
    """Pins aiokafka: a fetch whose later batch is corrupt raises from `getall`; the
    next `getall` drops it without moving the position past the good batches' records
    (never handed out), so they and the corrupt batch are fetched again."""
    data = batch(50, list(range(4)), values(4)) + corrupt(batch(54, [0, 1], values(2, 4)), -2)
    assignment = Assignment(50)
    buffer = _BlockBuffer(collections.OrderedDict(), 100_000)
    buffer[TP] = aiokafka_fetcher.FetchResult(
        TP, assignment=assignment, partition_records=partition_records(data, 50), backoff=0)
    with pytest.raises(CorruptRecordException):
        buffer[TP].getall(100_000)
    assert buffer[TP].getall(100_000) == []
    assert not buffer[TP].has_more()
    assert assignment.state.position == 50


def test_install_needs_the_fetcher_it_knows() -> None:
    fetcher = SimpleNamespace(_records=collections.OrderedDict())
    consumer = SimpleNamespace(_fetcher=fetcher)
    assert install_block_reader(consumer, 10)
    assert type(fetcher._records) is _BlockBuffer and fetcher._records.limit == 10
    assert not install_block_reader(SimpleNamespace(), 10)
    assert not install_block_reader(SimpleNamespace(_fetcher=SimpleNamespace(_records={})), 10)
    names = set(aiokafka_fetcher.PartitionRecords.__init__.__code__.co_names)
    assert AIOKAFKA_FIELDS - {"_partition_records"} <= names


def test_the_fetcher_builds_its_record_sets_with_their_bytes_kept() -> None:
    """Pins aiokafka: the fetcher builds each partition's record set from the fetched
    bytes with its module's `MemoryRecords` (the block reader's CRC check needs them),
    and keeping them changes nothing else."""
    assert "MemoryRecords" in aiokafka_fetcher.Fetcher._proc_fetch_request.__code__.co_names
    assert keep_fetched_bytes(aiokafka_fetcher)
    assert aiokafka_fetcher.MemoryRecords is KeptRecords
    assert keep_fetched_bytes(aiokafka_fetcher)  # once is enough
    elsewhere = SimpleNamespace(MemoryRecords=MemoryRecords,
                                Fetcher=SimpleNamespace(_proc_fetch_request=lambda: None))
    assert not keep_fetched_bytes(elsewhere)
    assert elsewhere.MemoryRecords is MemoryRecords
    data = batch(3, [0, 1], values(2)) + batch(5, [0], values(1, 2))
    kept, plain = KeptRecords(data), MemoryRecords(data)
    assert kept.raw is data and kept.size_in_bytes() == plain.size_in_bytes()
    while plain.has_next():
        assert kept.has_next() and kept.next_batch().base_offset == plain.next_batch().base_offset
    assert not kept.has_next()
