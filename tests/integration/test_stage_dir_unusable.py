"""A local stage directory that cannot be created or written is one config line naming
the sink's url, exit 2, before anything is read (as for data_dir): not a traceback
after the sources started."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import base_config, file_source, run_cli, stage_sink, write_config
from tests.helpers.filesystems import small_filesystem


def test_a_stage_dir_that_cannot_be_used_is_one_config_line(tmp_path: Path) -> None:
    (tmp_path / "in.ndjson").write_bytes(b'{"a": 1}\n')
    (tmp_path / "a-file").write_text("not a directory\n")
    with small_filesystem(tmp_path / "ro", size="1m") as ro:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        config = write_config(tmp_path, base_config(tmp_path)
                              + file_source(tmp_path / "in.ndjson", follow=False)
                              + stage_sink(tmp_path, name="ro", url=f"file://{ro}/stage/",
                                           columns=["a"])
                              + stage_sink(tmp_path, name="under_file", columns=["a"],
                                           url=f"file://{tmp_path}/a-file/stage/"))
        result = run_cli("run", "-c", str(config), timeout=60)
    assert result.code == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"sinks.ro.url: cannot create {ro}/stage: {ro} is not writable",
        f"sinks.under_file.url: cannot create {tmp_path}/a-file/stage: "
        f"{tmp_path}/a-file is not a directory"]
    assert not (tmp_path / "data" / "checkpoints").exists()  # nothing was read
