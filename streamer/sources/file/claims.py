"""Which worker reads which file when `workers` > 1.

A file (device and inode: a rotated file keeps its owner) belongs to the
worker that claimed it first; a claim is a small file created atomically
(link(2) fails when it exists) under `<data_dir>/shards/claims/<source>/`.
A worker claims a new file only while it holds no more claims than the least
loaded other worker, so two big files go to two workers whatever their names.
Claims outlive restarts: a restarted worker finds its files, and their
checkpoints, where it left them.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from pathlib import Path

from streamer.supervisor.shards import Shard


class FileClaims:
    def __init__(self, directory: Path, shard: Shard) -> None:
        self._dir = directory
        self._shard = shard
        self._owner: dict[tuple[int, int], int] = {}  # claims never move: cached
        # files of the last scan that nobody has claimed yet (left to a less
        # loaded worker): a finite run waits until they have an owner
        self.unclaimed: set[tuple[int, int]] = set()

    def _read_owner(self, path: Path) -> int | None:
        try:
            return int(path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _load(self) -> Counter[int]:
        counts: Counter[int] = Counter()
        for path in self._dir.iterdir():
            dev, _, ino = path.name.partition("-")
            owner = self._read_owner(path)
            if owner is None or not (dev.isdigit() and ino.isdigit()):
                continue
            self._owner[(int(dev), int(ino))] = owner
            counts[owner] += 1
        return counts

    def owns(self, key: tuple[int, int]) -> bool:
        if self._shard.count == 1:
            return True
        owner = self._owner.get(key)
        if owner is not None:
            return owner == self._shard.index
        self._dir.mkdir(parents=True, exist_ok=True)
        counts = self._load()
        owner = self._owner.get(key)
        if owner is not None:
            return owner == self._shard.index
        me = self._shard.index
        others = [counts[w] for w in range(self._shard.count) if w != me]
        if counts[me] > min(others):
            self.unclaimed.add(key)  # a less loaded worker takes it; asked again next scan
            return False
        return self._claim(key) == me

    def _claim(self, key: tuple[int, int]) -> int | None:
        target = self._dir / f"{key[0]}-{key[1]}"
        draft = self._dir / f".{key[0]}-{key[1]}.{self._shard.index}"
        draft.write_text(str(self._shard.index))
        try:
            os.link(draft, target)
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                draft.unlink()
        owner = self._read_owner(target)
        if owner is not None:
            self._owner[key] = owner
        return owner
