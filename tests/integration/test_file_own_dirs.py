"""A file source whose glob also matches what streamer writes (data_dir's journals and
dead letters, an NDJSON stage) must not read those back: each file it staged or
dead-lettered would come in again, be staged again, and so on without end."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.helpers import (
    Daemon,
    base_config,
    file_source,
    run_cli,
    stage_sink,
    stop,
    wait_for_log,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(60)


def staged_ids(stage: Path) -> Counter[str]:
    ids: Counter[str] = Counter()
    for path in stage.glob("*/part-*.ndjson"):
        ids.update(str(orjson.loads(raw)["id"]) for raw in path.read_bytes().splitlines())
    return ids


def test_a_glob_over_data_dir_and_stage_reads_only_the_input(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "app.ndjson").write_bytes(
        b"".join(orjson.dumps({"id": n}) + b"\n" for n in range(20)) + b"not json\n")
    cfg = write_config(tmp_path, base_config(tmp_path)
                       + file_source(str(tmp_path / "**" / "*.ndjson"), name="f",
                                     extra="glob_interval_ms = 100")
                       + stage_sink(tmp_path, columns=["id"], max_file_age_s=0.2,
                                    extra='format = "ndjson"\nwindow_age_s = 0.5'))
    daemon = Daemon(cfg, tmp_path / "run.log")
    try:
        wait_until(lambda: sum(staged_ids(tmp_path / "stage").values()) >= 20,
                   what="the input staged")
        wait_for_log(daemon, r"dead_letter/f\.ndjson is under .* not read")
        time.sleep(1.5)  # journal records and staged files would be read back by now
        summary = stop(daemon)
    finally:
        daemon.stop()
    assert staged_ids(tmp_path / "stage") == Counter(str(n) for n in range(20))
    assert summary["sources"]["f"]["records"] == 20, summary
    assert summary["sources"]["f"]["rejected"] == 1, summary


def test_own_files_a_checkpoint_names_are_not_read_again(tmp_path: Path) -> None:
    """A checkpoint written before such files were skipped may name them: they are
    not resumed either."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "app.ndjson").write_bytes(b'{"id": 1}\n')
    letters = tmp_path / "data" / "dead_letter" / "f.ndjson"
    letters.parent.mkdir(parents=True)
    letters.write_bytes(b'{"id": "from the dead letters"}\n')
    st = letters.stat()
    head = letters.read_bytes()[:256]
    checkpoint = {"version": 1, "source": "f", "files": [{
        "path": str(letters), "dev": st.st_dev, "ino": st.st_ino,
        "fp": hashlib.blake2b(head, digest_size=16).hexdigest(), "fp_len": len(head),
        "offset": 0}]}
    (tmp_path / "data" / "checkpoints").mkdir()
    (tmp_path / "data" / "checkpoints" / "f.json").write_bytes(orjson.dumps(checkpoint))
    cfg = write_config(tmp_path, base_config(tmp_path)
                       + file_source(str(tmp_path / "**" / "*.ndjson"), name="f", follow=False)
                       + stage_sink(tmp_path, columns=["id"], extra='format = "ndjson"'))
    result = run_cli("run", "-c", str(cfg))
    assert result.code == 0, result.stderr[-3000:]
    assert "dead_letter/f.ndjson is under a directory streamer writes" in result.stderr
    assert staged_ids(tmp_path / "stage") == Counter(["1"])
