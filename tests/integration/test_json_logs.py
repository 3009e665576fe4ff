"""`--log-format json`: every line streamer writes to stderr is one JSON object --
config problems (with their key), usage errors, log lines (rejected input lines among
them, rate-limited) and the summary."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.fixtures.td import TDEmulator
from tests.helpers import (
    base_config,
    file_source,
    read_dead_letters,
    run_cli,
    stage_sink,
    td_sink,
    write_config,
)


def json_lines(stderr: str) -> list[dict]:
    return [orjson.loads(line) for line in stderr.splitlines()]  # fails on any other line


def test_config_problems_are_one_object_each_with_their_key(tmp_path: Path):
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(tmp_path / "in.ndjson", name="in",
                                        extra='read_from = "middle"')
                          + stage_sink(tmp_path, extra="max_file_records = 0\nbogus = 1\n"))
    for command in ("check", "run"):
        result = run_cli(command, "-c", str(config), "--log-format", "json")
        assert result.code == 2, result.stderr
        problems = json_lines(result.stderr)
        assert {(p["level"], p["logger"], p["key"]) for p in problems} == {
            ("error", "streamer.config", "sinks.stage.max_file_records"),
            ("error", "streamer.config", "sinks.stage.bogus"),
            ("error", "streamer.config", "sources.in.read_from")}, problems
        assert all(p["message"].startswith(p["key"] + ": ") and p["time"] for p in problems)
    missing = run_cli("check", "-c", str(tmp_path / "none.toml"), "--log-format=json")
    assert missing.code == 2
    assert [(p["file"], p["message"]) for p in json_lines(missing.stderr)] == [
        (str(tmp_path / "none.toml"), f"{tmp_path / 'none.toml'}: no such file")]


def test_usage_errors_are_json_when_json_is_asked_for():
    result = run_cli("run", "--log-format", "json")
    assert result.code == 2
    [error] = json_lines(result.stderr)
    assert error["level"] == "error" and error["logger"] == "streamer.cli"
    assert error["message"] == ("streamer run: error: the following arguments are required: "
                                "-c/--config")
    assert error["usage"].startswith("usage: streamer run ")
    text = run_cli("run")
    assert text.code == 2 and text.stderr.startswith("usage: streamer run")


def test_a_run_writes_only_json_and_logs_rejected_lines(tmp_path: Path,
                                                        td_emulator: TDEmulator):
    """Each rejected line is a WARNING naming source, origin, offset and reason with
    a short excerpt (secrets masked); past 10 they are counted in one line."""
    key = td_emulator.key
    good = [b'{"time": %d, "n": "x"}' % i for i in range(50)]
    bad = [b"not json %d %s" % (i, key.encode()) for i in range(30)]
    lines = [line for pair in zip(good, bad + [None] * 20, strict=True) for line in pair
             if line is not None]
    (tmp_path / "in.ndjson").write_bytes(b"".join(line + b"\n" for line in lines))
    offsets = {}
    position = 0
    for line in lines:
        offsets[line] = position
        position += len(line) + 1
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(tmp_path / "in.ndjson", name="in", follow=False)
                          + stage_sink(tmp_path, columns=["time", "n"])
                          + td_sink(td_emulator.url))
    result = run_cli("run", "-c", str(config), "--log-format", "json",
                     env={"TD_WRITE_KEY": key})
    assert result.code == 0, result.stderr[-3000:]
    items = json_lines(result.stderr)
    assert key not in result.stderr and "not json" in result.stderr
    summary = items[-1]
    assert summary["sources"]["in"] == {"records": 50, "bytes": position, "rejected": 30}
    rejected = [i["message"] for i in items if i.get("logger") == "streamer.source.rejected"]
    assert len(rejected) == 11
    for i, message in enumerate(rejected[:10]):
        assert message == (f"source in: rejected the line at {tmp_path / 'in.ndjson'} offset "
                           f"{offsets[bad[i]]}: invalid JSON: invalid literal, expected "
                           "'null': line 1 column 1 (char 0); dead-lettered: "
                           f'"not json {i} ***"')
    assert rejected[10].endswith('"not json 29 ***" -- repeated 20 times in the last 10s '
                                 "(suppressed)")
    letters = read_dead_letters(tmp_path / "data", "in")
    assert [(d["offset"], d["raw"]) for d in letters] == [
        (offsets[line], line.decode()) for line in bad]
