"""At start: every unfinished window of an earlier run resumed, closed or loaded."""

from __future__ import annotations

import logging

from streamer.sinks.stage.journal import Journal, Window
from streamer.sinks.stage.ledger import Ledger
from streamer.sinks.stage.store.local import Store
from streamer.sinks.stage.windows import WindowKeeper

log = logging.getLogger("streamer.sink.stage")


async def recover(journal: Journal, store: Store, ledger: Ledger,
                  windows: WindowKeeper) -> None:
    """Resume every unfinished window of an earlier run."""
    unfinished = journal.open()
    windows.known_failed(journal.failed())
    await windows.discard_loaded(list(journal.windows.values()), store.locations)
    for window in unfinished:
        if window.state == "open" and window.info.get("exactly_once"):
            await _recover_from_records(window, journal, store, ledger, windows)
        elif window.state == "open":
            found = await store.list_window(window.id)
            window.bytes = sum(size for _, size in found)
            log.info("closing window %s left open by an earlier run (%d files)",
                     window.id, len(found))
            windows.close(window, [name for name, _ in found])
        else:
            log.info("resuming window %s (%s) from the journal", window.id, window.state)
            windows.resume(window)


async def _recover_from_records(window: Window, journal: Journal, store: Store,
                                ledger: Ledger, windows: WindowKeeper) -> None:
    """An exactly-once window left open: its files are those with a completion
    record; any other file in it was never acknowledged (replayed: deleted)."""
    done = journal.completed.get(window.id, [])
    counted = {d["file"] for d in done}
    for name, _ in await store.list_window(window.id):
        marker = None if name in counted else await ledger.find(window.id, name)
        if marker is not None:  # its ledger marker made it count: journaled now
            log.info("stage file %s/%s has a ledger marker but no completion record: "
                     "recorded now", window.id, name)
            journal.record_completed(window, marker)
            done = journal.completed.get(window.id, [])
            counted.add(name)
        elif name not in counted:
            log.info("deleting stage file %s/%s: complete but never journaled (its "
                     "records are read again)", window.id, name)
            await store.delete(window.id, name)
    window.bytes = sum(d["bytes"] for d in done)
    window.records = sum(d["records"] for d in done)
    log.info("closing window %s left open by an earlier run (%d files)",
             window.id, len(counted))
    windows.close(window, sorted(counted))
