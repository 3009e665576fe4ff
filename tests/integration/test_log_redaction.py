"""`streamer run` registers the config's secrets with its log handler: a secret
that turns up in any log line is masked (here: inside a file path)."""

from __future__ import annotations

from pathlib import Path

import orjson

from bench.gen import iter_records
from tests.fixtures.td import TDEmulator
from tests.helpers import (
    base_config,
    file_source,
    multiset,
    run_cli,
    stored,
    td_sink,
    write_config,
    write_ndjson,
)


def test_secret_in_a_log_line_is_masked_in_json_logs(tmp_path: Path,
                                                     td_emulator: TDEmulator) -> None:
    key = td_emulator.key
    assert "/" in key  # "<id>/<secret>": a directory and a subdirectory
    source_dir = tmp_path / key
    source_dir.mkdir(parents=True)
    records = [{**r, "seq": i} for i, r in enumerate(iter_records(200, 5))]
    write_ndjson(source_dir / "in.ndjson", records)
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                          + file_source(source_dir / "in.ndjson", follow=False)
                          + td_sink(td_emulator.url))
    result = run_cli("run", "-c", str(config), "--log-format", "json",
                     env={"TD_WRITE_KEY": key})
    assert result.code == 0, result.stderr[-3000:]
    assert key not in result.stderr
    lines = [orjson.loads(line) for line in result.stderr.splitlines()]  # one object a line
    reading = [item["message"] for item in lines[:-1] if item["message"].startswith("reading ")]
    assert reading == [f"reading {tmp_path}/***/in.ndjson from offset 0"]
    assert result.summary["sinks"]["td"]["delivered"] == len(records)
    assert multiset(stored(td_emulator, database="test_db", table="events")) == \
        multiset(records)
