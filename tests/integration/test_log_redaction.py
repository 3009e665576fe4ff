"""`streamer run` registers the config's secrets with its log handler: a secret
that turns up in any log line is masked (here: inside a file path)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench.gen import iter_records
from tests.fixtures.td import TDEmulator, run_td_emulator
from tests.helpers import (
    Daemon,
    base_config,
    file_source,
    free_port,
    multiset,
    read_dead_letters,
    run_cli,
    stop,
    stored,
    td_sink,
    wait_until,
    write_config,
    write_ndjson,
)
from tests.helpers.api import NO_PROXY
from tests.helpers.secrets import leaks

ECHOED_KEY = "8642/xY+zW=vU/tS9rQ8pO7nM6-lK5jI4hG3"


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
    reading = [item["message"] for item in lines[:-1] if " reading " in item["message"]]
    assert reading == [f"source events: reading {tmp_path}/***/in.ndjson from offset 0 "
                       "(1 file opened, 0 finished so far)"]  # said at once
    assert result.summary["sinks"]["td"]["delivered"] == len(records)
    assert multiset(stored(td_emulator, database="test_db", table="events")) == \
        multiset(records)


@pytest.mark.parametrize(("echo", "api"), [("json", "postback"), ("cut", "postback"),
                                           ("cut", "ingest")])
def test_a_key_echoed_json_escaped_or_cut_is_masked_everywhere(tmp_path: Path, echo: str,
                                                                api: str) -> None:
    """A 400 whose body echoes the key JSON-escaped ('\\/'), whole or cut by the
    512-byte truncation: no form of the key or of its first 8+ characters reaches
    a dead letter, a log line, /metrics, /health or the summary."""
    records = [{"seq": i, "msg": f"m{i}"} for i in range(120)]
    write_ndjson(tmp_path / "in.ndjson", records)
    port = free_port()
    with run_td_emulator(keys=(ECHOED_KEY,), extra_args=("--echo-key", echo)) as emu:
        config = write_config(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{port}")
                              + file_source(tmp_path / "in.ndjson")
                              + td_sink(emu.url, api=api))
        daemon = Daemon(config, tmp_path / "daemon.log", env={"TD_WRITE_KEY": ECHOED_KEY})
        try:
            wait_until(lambda: len(read_dead_letters(tmp_path / "data", "td")) == 120)
            scraped = [NO_PROXY.open(f"http://127.0.0.1:{port}{path}", timeout=5).read()
                       .decode() for path in ("/metrics", "/health")]
            summary = stop(daemon)
        finally:
            daemon.stop()
    assert summary["sinks"]["td"]["dead_lettered"] == 120
    letters = read_dead_letters(tmp_path / "data", "td")
    assert sorted(orjson.loads(letter["raw"])["seq"] for letter in letters) == list(range(120))
    data_text = "".join(p.read_text() for p in (tmp_path / "data").rglob("*") if p.is_file())
    for text in (data_text, daemon.log, *scraped, orjson.dumps(summary).decode()):
        assert leaks(ECHOED_KEY, text) == [], text[-2000:]
    reason = letters[0]["reason"]
    assert reason.startswith('HTTP 400: {"error":"invalid write key: ') and "***" in reason
    assert reason.endswith("[cut]" if echo == "cut" else '***","hint":"check the key"}')
