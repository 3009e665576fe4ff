"""A file the glob matches that streamer may not read (no read permission): said
once, by name and error, the other files read on; a one-shot run exits 1 naming
it, and its checkpoint is kept, so the run after the permission is fixed reads
exactly what it did not read yet.

The suites run as root, whom file modes do not stop: the run is started with
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped (`setpriv`, util-linux), as an
unprivileged service user would run it."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
from pathlib import Path

import orjson
import pytest
import zstandard

from tests.fixtures.processes import REPO, free_port
from tests.helpers import (
    assert_stage_equals,
    base_config,
    count_stage_rows,
    file_source,
    health,
    make_records,
    stage_sink,
    wait_until,
    write_config,
    write_ndjson,
)
from tests.helpers.process import streamer_cmd

pytestmark = pytest.mark.timeout(120)

DROP_DAC = "-dac_override,-dac_read_search"


def unprivileged(*args: str) -> list[str]:
    """`streamer ARGS` that file modes apply to."""
    prefix = (["setpriv", f"--bounding-set={DROP_DAC}", f"--inh-caps={DROP_DAC}"]
              if os.geteuid() == 0 else [])
    return [*prefix, *streamer_cmd(*args)]


def run_unprivileged(config: Path) -> tuple[int, str, dict]:
    """A one-shot `streamer run`: exit code, stderr, summary."""
    proc = subprocess.run(unprivileged("run", "-c", str(config)), cwd=REPO,
                          capture_output=True, timeout=90)
    stderr = proc.stderr.decode(errors="replace")
    return proc.returncode, stderr, orjson.loads(stderr.strip().splitlines()[-1])


def test_an_unreadable_file_fails_a_one_shot_run_and_is_read_once_readable(
        tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    records = make_records(12)
    locked, other = logs / "locked.ndjson", logs / "other.ndjson"
    write_ndjson(locked, records[:3])
    write_ndjson(other, records[3:6])
    stage = tmp_path / "stage"
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(str(logs / "*.ndjson"), follow=False)
                          + stage_sink(tmp_path))

    code, stderr, summary = run_unprivileged(config)
    assert code == 0, stderr
    assert_stage_equals(stage, records[:6])

    # the locked file grows and loses its read permission; the other one grows too
    write_ndjson(locked, records[6:9], mode="ab")
    write_ndjson(other, records[9:12], mode="ab")
    locked.chmod(0o000)
    code, stderr, summary = run_unprivileged(config)
    assert code == 1, stderr
    assert summary["sources"]["events"]["unread"] == {str(locked): "Permission denied"}
    warnings = [line for line in stderr.splitlines() if str(locked) in line]
    assert any("WARNING" in line and "cannot read" in line and "Permission denied" in line
               for line in warnings), stderr
    assert not any("deleted or compressed away" in line for line in warnings), stderr
    assert_stage_equals(stage, records[:6] + records[9:12])  # the other file read on

    # readable again: what it held past its checkpoint, once (nothing read twice)
    locked.chmod(0o644)
    code, stderr, summary = run_unprivileged(config)
    assert code == 0, stderr
    assert "unread" not in summary["sources"]["events"]
    assert_stage_equals(stage, records[:6] + records[9:12] + records[6:9])


def test_a_followed_unreadable_file_degrades_health_until_it_can_be_read(
        tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    records = make_records(6)
    locked, other = logs / "locked.ndjson", logs / "other.ndjson"
    write_ndjson(locked, records[:3])
    write_ndjson(other, records[3:])
    locked.chmod(0o000)
    stage, port = tmp_path / "stage", free_port()
    config = write_config(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{port}")
                          + file_source(str(logs / "*.ndjson"),
                                        extra="glob_interval_ms = 100")
                          + stage_sink(tmp_path))
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(unprivileged("run", "-c", str(config)), cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_until(lambda: count_stage_rows(stage) == 3, what="the readable file staged")
        status, body = health(port)
        assert (status, body["status"]) == (200, "degraded"), body
        assert body["sources"]["events"]["unread"] == {str(locked): "Permission denied"}
        locked.chmod(0o644)
        wait_until(lambda: count_stage_rows(stage) == 6, what="the file read once readable")
        status, body = health(port)
        assert (status, body["status"]) == (200, "ok"), body
        assert "unread" not in body["sources"]["events"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_stage_equals(stage, records)
    text = log_path.read_text()
    # said once (not every glob round), then that it is read
    assert text.count(f"cannot read {locked}: Permission denied") == 1, text
    assert f"{locked} can be read now" in text, text
    assert "deleted or compressed away" not in text, text


@pytest.mark.parametrize("suffix, pack", [
    ("gz", gzip.compress),
    ("zst", lambda data: zstandard.ZstdCompressor().compress(data)),
])
def test_a_compressed_file_is_not_read_as_text_and_fails_a_one_shot_run(
        tmp_path: Path, suffix: str, pack) -> None:
    """A data engineer's `paths = ["exports/*"]` over `.ndjson.gz` exports: before
    2026-12-05 the compressed bytes were read as lines, the first dead-lettered as
    invalid UTF-8 and the rest "left for the next run" (cut short), 0 records, exit 0.
    Now the file is unread, by name and why (exit 1), and nothing of it dead-lettered."""
    logs = tmp_path / "logs"
    logs.mkdir()
    records = make_records(6)
    plain, packed = logs / "a.ndjson", logs / f"b.ndjson.{suffix}"
    write_ndjson(plain, records[:3])
    packed.write_bytes(pack(b"".join(orjson.dumps(r) + b"\n" for r in records[3:])))
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(str(logs / "*"), follow=False)
                          + stage_sink(tmp_path))
    code, stderr, summary = run_unprivileged(config)
    assert code == 1, stderr
    (reason,) = summary["sources"]["events"]["unread"].values()
    assert list(summary["sources"]["events"]["unread"]) == [str(packed)]
    assert reason.startswith("compressed") and "decompress it" in reason, reason
    assert summary["sources"]["events"]["rejected"] == 0, stderr
    assert not (tmp_path / "data" / "dead_letter").exists() or not any(
        (tmp_path / "data" / "dead_letter").iterdir()), stderr
    assert_stage_equals(tmp_path / "stage", records[:3])


def test_exclude_keeps_compressed_rotations_out_of_the_glob(tmp_path: Path) -> None:
    """`paths = ["logs/app.log*"]` beside logrotate's `compress`: `exclude` leaves
    the .gz rotations out (no unread file, exit 0) while the plain rotation and the
    live log are read; `*` in an exclude pattern crosses `/`."""
    logs = tmp_path / "logs"
    logs.mkdir()
    records = make_records(9)
    write_ndjson(logs / "app.log", records[:3])
    write_ndjson(logs / "app.log.1", records[3:6])
    (logs / "app.log.2.gz").write_bytes(
        gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in records[6:])))
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(str(logs / "app.log*"), follow=False,
                                        extra='exclude = ["*.gz"]')
                          + stage_sink(tmp_path))
    code, stderr, summary = run_unprivileged(config)
    assert code == 0, stderr
    assert "unread" not in summary["sources"]["events"], summary
    assert "app.log.2.gz" not in stderr, stderr
    assert_stage_equals(tmp_path / "stage", records[:6])
