"""The stop order's last step: every source's checkpoint is saved even when one
cannot be, and nothing moves when the dead letters cannot be synced."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streamer.core.batch import BatchBuffer
from streamer.core.deadletter import DeadLetters
from streamer.observability.metrics import SinkStats
from streamer.pipeline.retire import RunningSink, RunningSource, StateNotSaved, retire


class Recorder:
    def __init__(self, name: str, log: list[str], fail_save: bool = False) -> None:
        self.name, self._log, self._fail = name, log, fail_save

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def after_drain(self) -> None:
        self._log.append(f"after_drain {self.name}")

    def finish(self) -> None:
        self._log.append(f"finish {self.name}")

    def save_checkpoint(self) -> None:
        if self._fail:
            raise OSError(28, "No space left on device")
        self._log.append(f"save {self.name}")

    def close(self) -> None:
        self._log.append(f"close {self.name}")


class FailingDeadLetters(DeadLetters):
    def sync(self) -> None:
        raise OSError(28, "No space left on device")


async def running(sources: list[Recorder], log: list[str]) -> tuple[list, list]:
    tasks = [RunningSource(s, asyncio.create_task(s.run())) for s in sources]
    buffer = BatchBuffer(max_records=10, max_bytes=1000, linger_s=0, max_batches=1,
                         drop_newest=False, stats=SinkStats())
    sink = Recorder("sink", log)
    return tasks, [RunningSink(sink, asyncio.create_task(buffer.get()), buffer)]


async def test_one_failed_checkpoint_does_not_stop_the_others(tmp_path: Path) -> None:
    log: list[str] = []
    sources, sinks = await running([Recorder("a", log, fail_save=True), Recorder("b", log)], log)
    with pytest.raises(StateNotSaved, match="1 checkpoint") as info:
        await retire(sources, sinks, DeadLetters(tmp_path))
    cause = info.value.__cause__
    assert isinstance(cause, OSError) and "No space left" in str(cause)
    assert "save b" in log
    assert [e for e in log if e.startswith("close")] == ["close a", "close b", "close sink"]


async def test_no_checkpoint_moves_when_dead_letters_cannot_be_synced(tmp_path: Path) -> None:
    log: list[str] = []
    sources, sinks = await running([Recorder("a", log), Recorder("b", log)], log)
    with pytest.raises(StateNotSaved) as info:
        await retire(sources, sinks, FailingDeadLetters(tmp_path))
    assert isinstance(info.value.__cause__, OSError)
    assert not [e for e in log if e.startswith("save")]
    assert [e for e in log if e.startswith("close")] == ["close a", "close b", "close sink"]
