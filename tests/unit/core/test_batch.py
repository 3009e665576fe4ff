import asyncio

from streamer.core.ack import Ack
from streamer.core.batch import TIMEOUT, BatchBuffer, Origin, Piece
from streamer.core.lines import Lines
from streamer.observability.metrics import SinkStats


def piece(values, done=None, sinks=1):
    records = [{"v": v} for v in values]
    raws = [b'{"v":%d}' % v for v in values]
    ack = Ack(sinks, done)
    return Piece(records, Lines.of(raws), ack, Origin("s", None, 0))


def buffer(stats=None, **kw):
    args = {"max_records": 10, "max_bytes": 10**6, "linger_s": 60, "max_batches": 2,
            "drop_newest": False, "stats": stats or SinkStats()}
    args.update(kw)
    return BatchBuffer(**args)


def values(batch):
    return [r["v"] for r in batch.iter_records()]


async def test_full_batches_are_sealed_and_split_exactly():
    buf = buffer()
    await buf.put(piece(range(25)))
    assert values(await buf.get()) == list(range(10))
    assert values(await buf.get()) == list(range(10, 20))
    assert await buf.get(timeout=0.01) is TIMEOUT  # 5 records wait for linger
    buf.close()
    assert values(await buf.get()) == list(range(20, 25))
    assert await buf.get() is None


async def test_linger_timer_starts_at_first_record():
    # 0.27 s to spare: on a loaded host (load 18, xdist) a 0.03 s sleep overshot a
    # 0.05 s linger and the first record went alone
    buf = buffer(linger_s=0.3)
    await buf.put(piece([1]))
    await asyncio.sleep(0.03)
    await buf.put(piece([2]))
    batch = await asyncio.wait_for(buf.get(), 1)
    # sealed by the timer of the first record, holding both
    assert values(batch) == [1, 2]


async def test_max_bytes_splits_by_record_sizes():
    buf = buffer(max_bytes=20)  # each raw is 7 bytes
    await buf.put(piece(range(1, 7)))
    buf.close()
    got = [values(b) async for b in _drain(buf)]
    assert got == [[1, 2], [3, 4], [5, 6]]  # a third record would make 21 bytes


async def test_split_piece_acks_once_all_parts_release():
    done = []
    buf = buffer(max_records=3)
    await buf.put(piece(range(7), done=lambda: done.append(True)))
    buf.close()
    batches = [b async for b in _drain(buf)]
    assert [values(b) for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    for b in batches[:-1]:
        b.release()
        assert not done
    batches[-1].release()
    assert done == [True]


async def test_block_when_full_resumes_when_consumed():
    stats = SinkStats()
    buf = buffer(stats, max_records=1, max_batches=2)
    producer = asyncio.create_task(buf.put(piece(range(5))))
    await asyncio.sleep(0.05)
    assert not producer.done()  # blocked: 2 sealed batches wait
    assert stats.received <= 3
    got = []
    while len(got) < 5:
        got.extend(values(await asyncio.wait_for(buf.get(), 1)))
    await asyncio.wait_for(producer, 1)
    assert got == [0, 1, 2, 3, 4] and stats.received == 5


async def test_drop_newest_counts_and_acks():
    stats = SinkStats()
    done = []
    buf = buffer(stats, max_records=2, max_batches=1, drop_newest=True)
    await buf.put(piece([1, 2]))  # sealed
    await buf.put(piece([3, 4]))  # the open batch: capacity is max_batches + 1
    await buf.put(piece([5, 6], done=lambda: done.append(True)))
    assert stats.dropped == 2 and stats.received == 6 and done == [True]
    assert values(await buf.get()) == [1, 2]
    assert values(await buf.get()) == [3, 4]


async def _drain(buf):
    while (batch := await buf.get()) is not None:
        yield batch


async def test_whole_pieces_are_never_split_between_batches():
    buf = buffer(max_records=10, max_batches=4, whole_pieces=True)
    await buf.put(piece(range(6)))
    await buf.put(piece(range(6, 12)))  # taken whole: the batch is sealed after it
    await buf.put(piece(range(12, 30)))  # larger than a batch: travels alone
    await buf.put(piece(range(30, 33)))
    buf.close()
    got = [values(b) async for b in _drain(buf)]
    assert got == [list(range(12)), list(range(12, 30)), list(range(30, 33))]
