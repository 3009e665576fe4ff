"""What streamer writes itself (data_dir's state, local stages) is never input.

A glob such as `/data/**/*.ndjson` with `data_dir = "/data/streamer"` would
otherwise read the journal and the dead letters back, and with an NDJSON stage
in its reach every staged file: each would be staged again, journaled again,
and so on without end.  Only files new to the source are checked (no system
call: their absolute path against each directory's, as configured and
resolved), and each skipped path is logged once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("streamer.source.file")

WARNED_KEEP = 10_000  # skipped paths remembered, so that each is logged once


class OwnDirs:
    def __init__(self, source: str, directories: Iterable[Path]) -> None:
        self._source = source
        prefixes: set[str] = set()
        for directory in directories:
            for form in (os.path.abspath(directory), os.path.realpath(directory)):
                prefixes.add(form.rstrip(os.sep) + os.sep)
        self._prefixes = tuple(sorted(prefixes))
        self._warned: set[str] = set()

    def holds(self, path: str) -> bool:
        """`path` is under a directory streamer writes (logged the first time)."""
        if not os.path.abspath(path).startswith(self._prefixes):
            return False
        if path not in self._warned:
            if len(self._warned) >= WARNED_KEEP:
                self._warned.clear()
            self._warned.add(path)
            log.warning("source %s: %s is under a directory streamer writes (data_dir's "
                        "state or a stage); not read", self._source, path)
        return True
