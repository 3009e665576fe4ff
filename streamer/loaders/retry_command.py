"""`streamer loads retry -c CFG [WINDOW ...]`: failed load windows get another go.

The command re-marks failed windows `closed` in their sink's journal (every
stage sink with a load, the single process's journal and every worker's);
streamer loads them at its next start.  It only appends to the journals, so
it is safe while streamer runs on the same data_dir: the running process
keeps the windows failed until it is restarted, then loads them.
"""

from __future__ import annotations

from pathlib import Path

from streamer.config.root import Config
from streamer.datadir.files import StateFileUnreadable
from streamer.datadir.layout import DataDir
from streamer.loaders.config import NoLoad
from streamer.runtime.exit import ExitCode
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.journal import retry_failed


def journals(cfg: Config) -> list[tuple[str, Path]]:
    """(sink, journal path) of every stage sink with a load, for every process."""
    data_dir = DataDir(cfg.data_path)
    owners = [data_dir.own, *sorted(p for p in data_dir.shards.glob("*") if p.name.isdigit())]
    found = []
    for name, sink in cfg.sinks.items():
        if not isinstance(sink, StageSinkConfig) or isinstance(sink.load, NoLoad):
            continue
        for owner in owners:
            path = owner / "journal" / f"{name}.ndjson"
            if path.exists():
                found.append((name, path))
    return found


def retry_windows(cfg: Config, window_ids: list[str]) -> tuple[list[str], int]:
    """Lines to print and the exit code (1 when a named window is not a failed one)."""
    lines, not_failed = [], set(window_ids)
    for sink, path in journals(cfg):
        try:
            marked, _ = retry_failed(path, window_ids)
        except StateFileUnreadable as exc:  # nothing marked in any journal
            return [str(exc)], ExitCode.FAILURE
        for window in marked:
            not_failed.discard(window.id)
            lines.append(f"sink {sink}: window {window.id} marked for retry "
                         f"({len(window.files)} files; was: {window.info.get('error')})")
    for window_id in sorted(not_failed):
        lines.append(f"window {window_id}: no failed window of that id in {cfg.data_dir}")
    marked_count = len(lines) - len(not_failed)
    lines.append(f"{marked_count} windows marked for retry: streamer loads them when it next "
                 "starts (restart a running one)" if marked_count else "no failed windows")
    return lines, ExitCode.FAILURE if not_failed else ExitCode.OK
