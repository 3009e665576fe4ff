"""A local stage file's temporary name ends with its format's suffix and `.tmp`
(`.ndjson.gz.tmp`, `.parquet.tmp`, ...), and a start removes the temporary files an
earlier run left, of today's names and of the older `.csv.tmp` whatever the format."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.observability.metrics import Metrics
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.journal import Window
from streamer.sinks.stage.store.local import LocalStore
from streamer.sinks.stage.store.retry import Retry


def store(tmp_path: Path, **keys: str) -> LocalStore:
    cfg = StageSinkConfig.model_validate(
        {"type": "stage", "url": f"file://{tmp_path}/stage/", "columns": ["id"], **keys})
    return LocalStore(cfg, "0", Retry(Metrics().sink("st"), "st", (OSError,)), b"")


@pytest.mark.parametrize(("keys", "ending"), [
    ({}, ".csv.tmp"),
    ({"compression": "gzip"}, ".csv.gz.tmp"),
    ({"format": "ndjson", "compression": "gzip"}, ".ndjson.gz.tmp"),
    ({"format": "ndjson", "compression": "zstd"}, ".ndjson.zst.tmp"),
    ({"format": "parquet"}, ".parquet.tmp"),
])
async def test_a_temporary_file_is_named_after_its_format(tmp_path, keys, ending):
    local = store(tmp_path, **keys)
    await local.start()
    file = await local.open(Window("w1"), f"part-00001{local.suffix}")
    try:
        assert file.tmp_path.parent == tmp_path / "stage" / "_tmp" / "0"
        assert file.tmp_path.name.endswith(ending), file.tmp_path.name
        assert file.tmp_path.name.startswith("part-")
        assert file.tmp_path.name.count(".") == ending.count(".")
    finally:
        await local.discard(file)


async def test_a_start_removes_temporary_files_of_old_and_new_names(tmp_path, caplog):
    local = store(tmp_path, format="parquet")
    leftovers = tmp_path / "stage" / "_tmp" / "0"
    leftovers.mkdir(parents=True)
    old = leftovers / "part-1764900000000000000-00001.csv.tmp"  # before session 17
    new = leftovers / "part-1764900000000000001-00002.parquet.tmp"
    for path in (old, new):
        path.write_bytes(b"PAR1 torn")
    caplog.set_level("INFO", logger="streamer.sink.stage")
    await local.start()
    assert list(leftovers.iterdir()) == []
    removed = {r.getMessage() for r in caplog.records}
    assert removed == {f"removing incomplete stage file {old} from an earlier run",
                       f"removing incomplete stage file {new} from an earlier run"}
