"""A disk whose write-back fails: write() succeeds (the page cache takes it), and the
error comes at fsync.  Linux then marks the pages clean, so a second fsync succeeds
although the bytes never reached the device ("fsyncgate": PostgreSQL panics on it).
A thin-provisioned volume that runs out of space, a network block device or a dying
disk do this; here an ext4 on a loop device whose backing tmpfs is full.  Needs root
(mount, losetup), like the CI machine and `make test`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import (
    assert_stage_equals,
    base_config,
    file_source,
    make_records,
    run_cli,
    stage_sink,
    write_config,
    write_ndjson,
)
from tests.helpers.filesystems import fill, remount, thin_filesystem

pytestmark = pytest.mark.timeout(120)


def test_a_stage_file_whose_fsync_failed_is_never_acknowledged(tmp_path: Path) -> None:
    """Before 2026-12-05 the failed fsync was retried until it 'passed', the file was
    renamed into its window and its records acknowledged: the run exited 0 with
    records the device never got (zeros where they were)."""
    records = make_records(20_000)
    write_ndjson(tmp_path / "in.ndjson", records)
    with thin_filesystem(tmp_path / "thin") as (disk, backing):
        stage = disk / "stage"
        config = write_config(tmp_path, base_config(tmp_path, oneshot_give_up_s=20)
                              + file_source(tmp_path / "in.ndjson", follow=False)
                              + stage_sink(tmp_path, url=f"file://{stage}/", fsync=True,
                                           max_file_age_s=600))
        filler = fill(backing)
        first = run_cli("run", "-c", str(config), timeout=60)
        assert first.code == 1, first.stderr[-3000:]
        errors = [line for line in first.stderr.splitlines() if " ERROR " in line]
        assert len(errors) == 1, first.stderr[-3000:]
        assert re.search(r"stage sink stage: fsync of \S+ failed \(\[Errno (28|5)\]",
                         errors[0]), errors
        assert "Traceback" not in first.stderr
        assert first.summary["sinks"]["stage"]["delivered"] == 0
        assert not list(stage.glob("*/part-*")), "a file whose fsync failed was completed"
        filler.unlink()  # the device takes writes again

        again = run_cli("run", "-c", str(config), timeout=60)
        assert again.code == 0, again.stderr[-3000:]
        remount(disk)  # what the device holds, not the page cache
        assert_stage_equals(stage, records)
