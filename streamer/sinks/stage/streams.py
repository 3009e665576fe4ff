"""Exactly-once staging: one open stage file per replayable stream.

A stream is (source, key) from a piece's Origin; a file holds whole pieces of
one stream only, so its completion record can say where in the stream it
starts and ends.  Pieces of a batch are grouped by stream (one encode per
group); a replayed piece that ends at or before the stream's fence (the end of
its last completed file, from the journal) is skipped.  At most `limit` files
are open: the least recently written is closed first.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict

from streamer.core.batch import Piece
from streamer.sinks.stage.store.local import StagedFile

log = logging.getLogger("streamer.sink.stage")

Stream = tuple[str, str | None]  # (source, key); key None: not replayable


def stream_stem(stream: Stream, start: int) -> str | None:
    """A file's name from its stream and first position: part-s<hash>-<start>
    (None for a stream that cannot be replayed: numbered as always)."""
    if stream[1] is None:
        return None
    return f"{stream_id(stream)}-{start:015d}"


def stream_id(stream: Stream) -> str:
    """s<hash of source and key>: the same in every instance and worker."""
    source, key = stream
    return "s" + hashlib.blake2b(f"{source}/{key}".encode(), digest_size=8).hexdigest()


STREAM_FILE = re.compile(r"part-s[0-9a-f]{16}-[0-9]{15,}\.")


def file_marker(window_id: str, location: str) -> str:
    """What a loader records as loaded for a staged file: a stream file's name
    (unique: its stream and first position), else window/name."""
    name = location.rsplit("/", 1)[-1]
    return name if STREAM_FILE.match(name) else f"{window_id}/{name}"


def group_pieces(pieces: list[Piece], fences: dict[tuple[str, str], int],
                 epochs: dict[tuple[str, str], int] | None = None
                 ) -> tuple[dict[Stream, list[Piece]], list[Piece], list[Piece]]:
    """The pieces to write by stream, in order, the replayed ones to skip, and the
    stale ones: read before their stream (a Kafka partition) was last revoked or
    assigned (`epochs`: the source's epoch then), which are not to be written."""
    groups: dict[Stream, list[Piece]] = {}
    skipped: list[Piece] = []
    stale: list[Piece] = []
    for piece in pieces:
        origin = piece.origin
        stream = (origin.source, origin.key)
        if epochs and origin.epoch < epochs.get(stream, 0):  # type: ignore[arg-type]
            stale.append(piece)
            continue
        if origin.key is not None and fences:
            fence = fences.get(stream)  # type: ignore[arg-type]
            if fence is not None and origin.offset < fence:
                if origin.end <= fence:
                    skipped.append(piece)
                    continue
                log.warning("source %s stream %s: a replayed piece [%d, %d) straddles the "
                            "staged end %d; written whole (its records before %d twice)",
                            origin.source, origin.stream, origin.offset, origin.end, fence,
                            fence)
        groups.setdefault(stream, []).append(piece)
    return groups, skipped, stale


class StreamFiles:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._files: OrderedDict[Stream, StagedFile] = OrderedDict()

    def __len__(self) -> int:
        return len(self._files)

    def get(self, stream: Stream) -> StagedFile | None:
        file = self._files.get(stream)
        if file is not None:
            self._files.move_to_end(stream)
        return file

    def add(self, file: StagedFile) -> None:
        assert file.stream is not None
        self._files[file.stream] = file

    def pop(self, stream: Stream) -> StagedFile | None:
        return self._files.pop(stream, None)

    def full(self) -> bool:
        return len(self._files) >= self._limit

    def least_recent(self) -> Stream:
        return next(iter(self._files))

    def streams(self) -> list[Stream]:
        return list(self._files)

    def first_opened(self) -> float | None:
        return min((f.opened_at for f in self._files.values()), default=None)

    def opened_before(self, when: float) -> list[Stream]:
        return [s for s, f in self._files.items() if f.opened_at <= when]
