"""A local stage file's write-back started as it grows (store/writeback.py): ranges in
order, one at a time, waited for before the file completes; the file's bytes as
written; nothing started without fsync."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from pathlib import Path

from streamer.observability.metrics import Metrics
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.journal import Window
from streamer.sinks.stage.store.local import LocalStore
from streamer.sinks.stage.store.retry import Retry
from streamer.sinks.stage.store.writeback import WRITEBACK_BYTES, sync_file_range

CHUNK = 3 << 20


def store(tmp_path: Path, fsync: bool = True) -> LocalStore:
    cfg = StageSinkConfig.model_validate(
        {"type": "stage", "url": f"file://{tmp_path}/stage/", "columns": ["id", "v"],
         "fsync": fsync})
    return LocalStore(cfg, "i1", Retry(Metrics().sink("st"), "st", (OSError,)), b"id,v\r\n")


def chunk(index: int) -> bytes:
    row = f"{index},{'x' * 90}\r\n".encode()
    return row * (CHUNK // len(row))


async def write_file(local: LocalStore, chunks: int) -> tuple[Path, bytes]:
    await local.start()
    file = await local.open(Window("w1"), "part-00001.csv")
    for index in range(chunks):
        file.write(chunk(index))
        await local.flushed(file)
        await asyncio.sleep(0.01)  # the sink awaits its encoder between writes
    await local.complete(file)
    return local._dir / "w1" / "part-00001.csv", b"id,v\r\n" + b"".join(map(chunk, range(chunks)))


async def test_write_back_starts_every_few_mib_in_order_and_the_file_is_whole(tmp_path):
    local = store(tmp_path)
    started: list[tuple[int, int]] = []
    local._write_back = lambda fd, offset, nbytes: started.append((offset, nbytes))
    path, written = await write_file(local, 20)
    assert path.read_bytes() == written
    assert started and started[0][0] == 0
    assert all(nbytes >= WRITEBACK_BYTES for _, nbytes in started)
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(started))
    assert started[-1][0] + started[-1][1] > len(written) - WRITEBACK_BYTES - CHUNK


async def test_one_start_at_a_time_and_the_file_completes_after_it(tmp_path):
    local = store(tmp_path)
    release, calls, closed_before = threading.Event(), [], []

    def slow(fd: int, offset: int, nbytes: int) -> None:
        calls.append(offset)
        release.wait(10)
        closed_before.append(os.fstat(fd).st_size)  # still open: fstat would fail

    local._write_back = slow
    await local.start()
    file = await local.open(Window("w1"), "part-00001.csv")
    for index in range(12):  # 36 MiB: two starts due, the second while the first runs
        file.write(chunk(index))
        await local.flushed(file)
    assert calls == [0]
    completing = asyncio.create_task(local.complete(file))
    await asyncio.sleep(0.1)
    assert not completing.done()
    release.set()
    await completing
    assert closed_before and calls == [0]
    assert (local._dir / "w1" / "part-00001.csv").stat().st_size == file.stored


async def test_the_real_call_and_no_write_back_without_fsync(tmp_path):
    start = sync_file_range()
    assert start is not None  # Linux with glibc: the tests' platforms
    path, written = await write_file(store(tmp_path / "a"), 12)
    assert path.read_bytes() == written
    local = store(tmp_path / "b", fsync=False)
    assert local._write_back is None
    path, written = await write_file(local, 12)
    assert path.read_bytes() == written
