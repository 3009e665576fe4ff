"""A partition's fetched messages as one block of values, without a `ConsumerRecord`
per message.

aiokafka's `getmany` builds a `ConsumerRecord` (a dataclass with a dict, a headers
tuple) for every message in Python, and the garbage collector then walks them:
about two thirds of the Kafka source's own CPU.  `install_block_reader` makes the
consumer's fetcher hand over a whole partition fetch instead: when a fetch response
is buffered, its record iterator is replaced by one that reads the record batches
with aiokafka's C reader and yields a single `FetchedBlock` (the values and
where their offsets are).  Everything else stays aiokafka's: `getmany`, its
position updates, the fetch requests, errors, rebalances.

CRC checks: aiokafka checks a v2 batch's CRC32C with a table loop (0.7 ms a MiB,
about 4% of the source's CPU).  The fetcher's `MemoryRecords` is replaced by
`KeptRecords`, which keeps the fetched bytes beside it, and the block reader
checks each v2 batch over those bytes with the `google-crc32c` package (hardware
CRC32C where the CPU has it: 0.14 ms a MiB in 16 KiB batches, each batch's copy
included) before the C reader reads its records; a corrupt batch raises
`CorruptRecordException` as aiokafka's check does.  Legacy (v0/v1) message
sets, and any batch whose header does not match the kept bytes, are checked by
aiokafka as before.

This reaches into aiokafka's internals (`Fetcher._records`, `PartitionRecords`,
the fetcher module's `MemoryRecords`); tests/unit/sources/kafka/test_fetch.py fails
if they change.  When they are missing, nothing is installed and `getmany` returns
`ConsumerRecord` lists, which `blocks_of` turns into blocks the slow way.
"""

from __future__ import annotations

import collections
import logging
import struct
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.record.memory_records import MemoryRecords
from google_crc32c import value as crc32c

log = logging.getLogger("streamer.source.kafka")

# what the block reader uses of aiokafka's fetch results (checked before it is installed)
AIOKAFKA_FIELDS = frozenset({"_partition_records", "_tp", "_records", "_records_iterator",
                             "next_fetch_offset", "_check_crcs", "_aborted_transactions"})
# a v2 batch's header: base offset, length (of what follows it), leader epoch,
# magic, CRC32C of everything from the attributes on (Kafka's RecordBatch format)
BATCH_HEADER = struct.Struct(">qiibI")
LOG_OVERHEAD = 12  # base offset and length: a batch ends at its start + this + length
CRC_FROM = BATCH_HEADER.size  # the attributes (21): where the CRC32C's bytes start


class FetchedBlock:
    """The values of consecutive messages of one partition (None: a tombstone) and
    their offsets: `first + i` for value i unless `offsets` lists them (compacted
    topics, a fetch starting inside a producer batch)."""

    __slots__ = ("first", "offsets", "values")

    def __init__(self, values: list[bytes | None], first: int,
                 offsets: list[int] | None = None) -> None:
        self.values = values
        self.first = first
        self.offsets = offsets

    @property
    def last(self) -> int:
        """The offset of the last message."""
        if self.offsets:
            return self.offsets[-1]
        return self.first + len(self.values) - 1

    def offset_of(self, index: int) -> int:
        return self.first + index if self.offsets is None else self.offsets[index]

    def index_of(self, offset: int) -> int:
        """The index of the first message at or after `offset`."""
        if self.offsets is None:
            return min(max(offset - self.first, 0), len(self.values))
        return bisect_left(self.offsets, offset)

    def split(self, index: int) -> tuple[FetchedBlock, FetchedBlock]:
        """The messages before `index` and from it on (the first may be empty:
        a fence in a gap of a compacted partition)."""
        offsets = self.offsets
        if offsets is None:
            return (FetchedBlock(self.values[:index], self.first),
                    FetchedBlock(self.values[index:], self.first + index))
        # either side may be empty (a fence among trailing tombstones, taken out
        # before): it then starts where its values would
        head, rest = offsets[:index], offsets[index:]
        after = offsets[-1] + 1 if offsets else self.first
        return (FetchedBlock(self.values[:index], head[0] if head else self.first, head),
                FetchedBlock(self.values[index:], rest[0] if rest else after, rest))

    def without_tombstones(self) -> FetchedBlock:
        """The messages with a value (may be empty); their offsets listed."""
        kept = [i for i, value in enumerate(self.values) if value is not None]
        offsets = [self.offset_of(i) for i in kept]
        return FetchedBlock([self.values[i] for i in kept],
                            offsets[0] if offsets else self.first, offsets)

    def __repr__(self) -> str:
        return f"FetchedBlock({len(self.values)} values, offsets {self.first}..{self.last})"


def blocks_of(fetched: list[Any]) -> list[FetchedBlock]:
    """What `getmany` returned for one partition, as blocks: the block reader's
    blocks as they are, `ConsumerRecord`s (no block reader) converted."""
    if not fetched or type(fetched[0]) is FetchedBlock:
        return fetched
    first = fetched[0].offset
    offsets = [m.offset for m in fetched]
    contiguous = offsets[-1] - first + 1 == len(offsets)
    return [FetchedBlock([m.value for m in fetched], first, None if contiguous else offsets)]


class KeptRecords:
    """aiokafka's `MemoryRecords` of one partition fetch, with the fetched bytes kept
    (`raw`) for the block reader's CRC check."""

    __slots__ = ("has_next", "next_batch", "raw", "size_in_bytes")

    def __init__(self, data: bytes) -> None:
        records = MemoryRecords(data)
        self.raw = data
        self.has_next = records.has_next
        self.next_batch = records.next_batch
        self.size_in_bytes = records.size_in_bytes


def _crc_ok(batch: Any, raw: bytes, at: int) -> bool:
    """Whether the batch that starts at `at` in `raw` has its CRC; aiokafka's own
    check when it is not a v2 batch or not the one there (never seen: a guard)."""
    if type(batch) is DefaultRecordBatch:
        base, length, _epoch, magic, crc = BATCH_HEADER.unpack_from(raw, at)
        if magic == 2 and base == batch.base_offset and crc == batch.crc:
            # google-crc32c takes bytes only: the slice copies the batch
            # (about 0.03 ms a MiB more in 16 KiB batches)
            return crc32c(raw[at + CRC_FROM:at + LOG_OVERHEAD + length]) == crc
    return batch.validate_crc()


def _read_blocks(partition_records: Any, limit: int,
                 gappy: set[Any]) -> Iterator[FetchedBlock]:
    """What aiokafka's `PartitionRecords._unpack_records` does for read_uncommitted
    (CRC check, control batches skipped, messages before the fetch position
    skipped, `next_fetch_offset` advanced batch by batch), one block for the lot.

    A fetch of more than `limit` messages is cut after the first `limit`: the
    position moves past them only, and the rest is fetched again (aiokafka drops
    a fetch result once its iterator ends).  The same happens before a batch with
    gaps inside (a compacted topic): its offsets are lost once its values are
    taken, so its partition goes into `gappy` and is read record by record (with
    each record's offset) from then on."""
    tp = partition_records._tp
    records = partition_records._records
    check_crcs = partition_records._check_crcs
    start = partition_records.next_fetch_offset  # where a corrupt fetch is read again
    raw: bytes | None = getattr(records, "raw", None)
    at = 0  # where the next batch starts in raw
    fast = tp not in gappy
    values: list[bytes | None] = []
    offsets: list[int] | None = None
    first = -1
    while records.has_next():
        batch = records.next_batch()
        if check_crcs:
            if raw is None:
                ok = batch.validate_crc()
            else:
                ok = _crc_ok(batch, raw, at)
                at += LOG_OVERHEAD + int.from_bytes(raw[at + 8:at + LOG_OVERHEAD])
            if not ok:  # nothing of this fetch was handed out: all of it is read again
                partition_records.next_fetch_offset = start
                raise CorruptRecordException(f"Invalid CRC - {tp}")
        if batch.is_control_batch:
            partition_records.next_fetch_offset = batch.next_offset
            continue
        position = partition_records.next_fetch_offset
        batch_offsets: range | list[int]
        if fast and type(batch) is DefaultRecordBatch and batch.base_offset >= position:
            base = batch.base_offset
            # each record is freed as soon as its value is taken: the garbage
            # collector never counts them (a list of them would make it run)
            batch_values = [m.value for m in batch]
            count = len(batch_values)
            if count != batch.next_offset - base:
                gappy.add(tp)
                break
            batch_offsets = range(base, base + count)
        else:  # a v0/v1 message set, a fetch from inside a batch, a compacted partition
            messages = list(batch)
            if messages and messages[0].offset < position:
                messages = [m for m in messages if m.offset >= position]
            batch_values = [m.value for m in messages]
            batch_offsets = [m.offset for m in messages]
            count = len(messages)
        if count:
            if first < 0:
                first = batch_offsets[0]
            if offsets is None and not (batch_offsets[0] == first + len(values)
                                        and batch_offsets[-1] == batch_offsets[0] + count - 1):
                offsets = list(range(first, first + len(values)))  # gaps from here on
            if offsets is not None:
                offsets += batch_offsets
            values += batch_values
            if len(values) >= limit:
                del values[limit:]
                if offsets is not None:
                    del offsets[limit:]
                block = FetchedBlock(values, first, offsets)
                partition_records.next_fetch_offset = block.last + 1
                yield block
                return
        partition_records.next_fetch_offset = batch.next_offset
    if values:
        yield FetchedBlock(values, first, offsets)


class _BlockBuffer(collections.OrderedDict):
    """The fetcher's buffer of fetch results: each one stored gets the block reader
    (errors are left as they are, and so are read_committed fetches that name aborted
    transactions: aiokafka skips their records.  One that names none -- every fetch of
    a topic without transactions -- is read as read_uncommitted reads it: aiokafka
    then skips only control batches, as `_read_blocks` does)."""

    def __init__(self, buffer: collections.OrderedDict, limit: int) -> None:
        super().__init__(buffer)
        self.limit = limit
        self.gappy: set[Any] = set()  # partitions read record by record (_read_blocks)

    def __setitem__(self, tp: Any, result: Any) -> None:
        partition_records = getattr(result, "_partition_records", None)
        if partition_records is not None and not partition_records._aborted_transactions:
            partition_records._records_iterator = _read_blocks(partition_records, self.limit,
                                                                self.gappy)
        super().__setitem__(tp, result)


def install_block_reader(consumer: Any, limit: int) -> bool:
    """Make a started consumer's `getmany` return `[FetchedBlock]` per partition, of
    at most `limit` messages each; False (nothing changed) when this aiokafka does
    not have what it needs."""
    from aiokafka.consumer import fetcher as fetcher_module

    buffer = getattr(getattr(consumer, "_fetcher", None), "_records", None)
    stores = set()
    for name in ("PartitionRecords", "FetchResult"):
        init = getattr(getattr(fetcher_module, name, None), "__init__", None)
        stores |= set(getattr(getattr(init, "__code__", None), "co_names", ()))
    if type(buffer) is not collections.OrderedDict or not stores >= AIOKAFKA_FIELDS:
        log.info("kafka: aiokafka's fetcher is not the one the block reader knows; "
                 "reading message by message")
        return False
    consumer._fetcher._records = _BlockBuffer(buffer, limit)
    keep_fetched_bytes(fetcher_module)
    return True


def keep_fetched_bytes(fetcher_module: Any) -> bool:
    """Have aiokafka's fetcher build its `MemoryRecords` as `KeptRecords` (for every
    consumer of this process: the two behave alike), when it builds them where this
    module knows; False otherwise (aiokafka's CRC check then runs)."""
    if getattr(fetcher_module, "MemoryRecords", None) is KeptRecords:
        return True
    process = getattr(getattr(fetcher_module, "Fetcher", None), "_proc_fetch_request", None)
    names = getattr(getattr(process, "__code__", None), "co_names", ())
    if getattr(fetcher_module, "MemoryRecords", None) is not MemoryRecords \
            or "MemoryRecords" not in names:
        log.info("kafka: aiokafka's fetcher builds its record sets elsewhere; "
                 "aiokafka checks their CRCs")
        return False
    fetcher_module.MemoryRecords = KeptRecords
    return True
