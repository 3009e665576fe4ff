"""kill -9 at random moments of a file -> local stage + td run, then a clean finish:
every input record is in both sinks at least once (issue #6)."""

from __future__ import annotations

import bisect
import itertools
import random
import time
from pathlib import Path

import pytest

from tests.fixtures.td import TDEmulator
from tests.helpers import (
    Daemon,
    assert_stage_covers,
    base_config,
    checkpoint_offset,
    count_stage_rows,
    file_source,
    make_records,
    ndjson,
    run_cli,
    stage_ids,
    stage_sink,
    stored,
    summary_identity_problems,
    td_sink,
    wait_for_log,
    write_config,
    write_ndjson,
)
from tests.reliability.helpers import stage_duplicates, td_coverage

pytestmark = pytest.mark.timeout(120)

RECORDS = 50_000
KILLS = 10
SEED = 6


def test_ten_kill_9_then_clean_finish_lose_nothing(tmp_path: Path, td_emulator: TDEmulator,
                                                   record_property) -> None:
    rng = random.Random(SEED)
    records = make_records(RECORDS, seed=SEED)
    source = tmp_path / "in.ndjson"
    size = write_ndjson(source, records)
    line_ends = list(itertools.accumulate(len(line) + 1 for line in ndjson(records)))
    # small reads and batches: many chunks in flight, so that every kill finds some
    # read but not yet acknowledged by both sinks; every td request takes 0.1 s (4 in
    # flight, 100 records each): the load takes about 12 s, so the kills land all along
    td_emulator.set_faults(slow=1.0, slow_seconds=0.1)
    text = (base_config(tmp_path) + file_source(source, extra="read_bytes = 65536")
            + stage_sink(tmp_path, extra="batch = { max_records = 1000, linger_ms = 100 }")
            + td_sink(td_emulator.url, api="ingest",
                      extra="batch = { max_records = 100, linger_ms = 100 }\nconcurrency = 4"))
    config = write_config(tmp_path, text)
    env = {"TD_WRITE_KEY": td_emulator.key}
    stage, data = tmp_path / "stage", tmp_path / "data"
    progress = []
    for attempt in range(KILLS):
        daemon = Daemon(config, tmp_path / f"run{attempt}.log", env=env)
        try:
            wait_for_log(daemon, "reading .* from offset")
            time.sleep(rng.uniform(0.3, 2.5))
            assert daemon.proc.poll() is None, daemon.log[-3000:]
            daemon.kill()
        finally:
            daemon.stop()
        checkpoint = checkpoint_offset(data, "events")
        # the checkpoint never passes a record that a sink has not delivered
        covered = records[:bisect.bisect_right(line_ends, checkpoint)]
        assert not {r["id"] for r in covered} - set(stage_ids(stage)), "stage behind checkpoint"
        assert not {r["id"] for r in covered} - {r["id"] for r in stored(td_emulator)}, \
            "td behind checkpoint"
        progress.append((checkpoint, count_stage_rows(stage),
                         td_emulator.stats()["records_accepted"]))
    print("after each kill (checkpoint, stage rows, td records):", progress)
    assert progress[-1][0] < size, "the kills came after the end: nothing was interrupted"

    config.write_text(text.replace("follow = true", "follow = false"))
    done = run_cli("run", "-c", str(config), env=env)
    assert done.code == 0, done.stderr[-3000:]
    assert not summary_identity_problems(done.summary)
    counts = assert_stage_covers(stage, records)
    stage_dups, td_dups = stage_duplicates(counts), td_coverage(td_emulator, records)
    print(f"{RECORDS} records, {KILLS} kill -9: lost 0; duplicates stage {stage_dups}, "
          f"td {td_dups}")
    record_property("duplicates_stage", stage_dups)
    record_property("duplicates_td", td_dups)
