"""The bench's peer rows without a peer binary: Fluent Bit's generated configuration,
the output its template must write, the completion probes, the measurement to a
complete output, and the checks of a peer's output."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
import urllib.request
from pathlib import Path

import orjson
import pytest

from bench.harness import BenchError, run_measured
from bench.peers.complete import LineCounter, ReceiverRecords
from bench.peers.fluent_bit import (
    ENV_VAR,
    TimeFrom,
    csv_config,
    find_binary,
    http_config,
    template_line,
)
from bench.peers.scenarios import input_parts
from bench.peers.verify import (
    check_sampled_records,
    check_template_lines,
    records_of_bodies,
    same_record,
    sample_positions,
)
from bench.run import PEER_ROWS, needed
from bench.td_receiver import Receiver, serve

TS = TimeFrom("ts", "%Y-%m-%dT%H:%M:%SZ")
COLUMNS = ("time", "ts", "host", "latency", "status", "note", "ok")


def record(i: int) -> dict[str, object]:
    return {"time": 1_700_000_000 + i, "ts": f"2023-11-14T22:13:{20 + i:02d}Z",
            "host": f"web-{i}", "latency": i + 0.25, "status": 200 + i,
            "note": None if i % 2 else f'said "hi", {i}', "ok": i % 3 == 0}


def write_ndjson(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def test_csv_config_has_one_input_and_output_per_file_and_the_template(tmp_path: Path) -> None:
    inputs = [tmp_path / "part-0.ndjson", tmp_path / "part-1.ndjson"]
    config = csv_config(inputs, tmp_path / "out", COLUMNS, tmp_path, time_from=TS)
    main = config.files["fluent-bit.conf"]
    assert main.count("[INPUT]") == 2 and main.count("[OUTPUT]") == 2
    for index, path in enumerate(inputs):
        assert f"Tag               in{index}\n    Path              {path}\n" in main
        assert f"Match    in{index}\n" in main and f"File     out{index}.csv\n" in main
    assert "Flush        0.2\n" in main and "Exit_On_Eof       Off\n" in main
    assert ("Template {time},{ts},{host},{latency},{status},{note},{ok}\n" in main)
    assert f"Parsers_File {tmp_path / 'parsers.conf'}\n" in main
    parsers = config.files["parsers.conf"]
    assert "Time_Key    ts\n" in parsers and "Time_Keep   On\n" in parsers
    written = config.write(tmp_path / "conf")
    assert written.read_text() == main


def test_a_time_column_needs_a_time_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="time_from"):
        csv_config([tmp_path / "in"], tmp_path, ["time", "host"], tmp_path)
    config = csv_config([tmp_path / "in"], tmp_path, ["host"], tmp_path)
    assert "Time_Key" not in config.files["parsers.conf"]


def test_http_config_posts_json_lines_without_a_date_key(tmp_path: Path) -> None:
    main = http_config([tmp_path / "a", tmp_path / "b"], "127.0.0.1", 8123, "/fb",
                       tmp_path).files["fluent-bit.conf"]
    assert main.count("[INPUT]") == 2 and main.count("[OUTPUT]") == 1
    for line in ("Port          8123", "URI           /fb", "Format        json_lines",
                 "json_date_key false", "Match         *"):
        assert line + "\n" in main


def test_template_line_is_what_fluent_bit_writes() -> None:
    rec = {"time": 1_700_000_000, "ts": "2023-11-14T22:13:20Z", "host": "a,b",
           "latency": 22.1, "status": 200, "note": None, "ok": True}
    assert template_line(rec, [*COLUMNS, "absent"], TS) == (
        "1700000000.000000,2023-11-14T22:13:20Z,a,b,22.100000,200,nil,true,{absent}")
    with pytest.raises(ValueError):
        template_line({"x": {"nested": 1}}, ["x"])


def test_find_binary_prefers_the_env_var_then_path(tmp_path: Path) -> None:
    binary = tmp_path / "fluent-bit"
    binary.write_text("#!/bin/sh\n")
    assert find_binary({"PATH": str(tmp_path / "none")}) is None
    with pytest.raises(FileNotFoundError):
        find_binary({ENV_VAR: str(binary)})  # not executable
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    assert find_binary({ENV_VAR: str(binary)}) == binary
    assert find_binary({"PATH": str(tmp_path)}) == binary


def test_line_counter_reads_what_was_appended(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    counter = LineCounter([a, b], [3, 1])
    assert not counter()  # neither exists yet
    a.write_bytes(b"1\n2\n")
    b.write_bytes(b"x\n")
    assert not counter() and counter.lines == [2, 1]
    with open(a, "ab") as fh:
        fh.write(b"3")
    assert not counter()  # a line is counted once its newline is written
    with open(a, "ab") as fh:
        fh.write(b"\n4\n")
    assert counter() and counter.lines == [4, 1]


WRITER = """
import sys, time
path, lines = sys.argv[1], int(sys.argv[2])
with open(path, "w") as fh:
    for i in range(lines):
        fh.write(f"{i}\\n")
        fh.flush()
        time.sleep(0.002)
time.sleep(60)  # like Fluent Bit: done, but still running
"""


def test_a_run_is_measured_to_its_complete_output_then_stopped(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = run_measured([sys.executable, "-c", WRITER, out, "50"],
                       complete=LineCounter([out], [50]), timeout=30)
    assert run.ok and run.exit_wall_s is not None
    assert run.wall_s <= run.exit_wall_s < 30  # stopped, not timed out
    assert out.read_text().splitlines() == [str(i) for i in range(50)]
    assert run.cpu_s > 0


def test_a_failing_probe_fails_the_run(tmp_path: Path) -> None:
    def probe() -> bool:
        raise OSError("receiver gone")

    run = run_measured([sys.executable, "-c", "import time; time.sleep(60)"],
                       complete=probe, timeout=30)
    assert not run.ok and run.exit_wall_s is None
    assert "completion probe failed: OSError('receiver gone')" in run.stderr_tail


def test_template_lines_are_checked_in_order_and_counted(tmp_path: Path) -> None:
    records = [record(i) for i in range(30)]
    source = write_ndjson(tmp_path / "in.ndjson", records)
    lines = [template_line(r, COLUMNS, TS) + "\n" for r in records]
    output = tmp_path / "out.csv"
    output.write_text("".join(lines))
    check_template_lines(output, source, COLUMNS, TS, 30)
    output.write_text("".join(lines[:-1]))
    with pytest.raises(BenchError, match="29 lines, expected 30"):
        check_template_lines(output, source, COLUMNS, TS, 30)
    output.write_text("".join([*lines[:5], lines[5].replace("web-5", "web-6"), *lines[6:]]))
    with pytest.raises(BenchError, match="line 6"):
        check_template_lines(output, source, COLUMNS, TS, 30)


def test_sample_positions_cover_the_head_the_spread_and_the_last() -> None:
    positions = sample_positions(10_000, count=10, head=3)
    assert positions == [0, 1, 2, *range(1000, 10_000, 1000), 9999]
    assert sample_positions(2) == [0, 1] and sample_positions(0) == []


def test_sampled_records_are_found_in_the_input(tmp_path: Path) -> None:
    records = [record(i) for i in range(40)]
    source = write_ndjson(tmp_path / "in.ndjson", records)
    body_lines = b"".join(orjson.dumps(r) + b"\n" for r in records[:20])
    ingest = orjson.dumps({"events": records[20:]})
    got = records_of_bodies(body_lines + ingest)
    assert got == records
    assert check_sampled_records(got, source, count=40) == 40
    wrong = [*records[:3], {**records[3], "latency": 3.5}]
    with pytest.raises(BenchError, match="not in the input"):
        check_sampled_records(wrong, source, count=4)
    with pytest.raises(BenchError, match="no records"):
        check_sampled_records([], source)


def test_same_record_takes_floats_within_printing_precision() -> None:
    assert same_record({"a": 0.1, "b": [1, "x"]}, {"a": 0.1 + 1e-17, "b": [1, "x"]})
    assert not same_record({"a": 0.1}, {"a": 0.1001})
    assert not same_record({"a": 1}, {"a": True}) and not same_record({"a": 1}, {"b": 1})


def test_the_receiver_counts_json_lines_and_keeps_a_sample() -> None:
    receiver = Receiver(sample=2)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(serve(receiver))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        bodies = [b'{"a":1}\n{"a":2}\n', b'{"events":[{"a":3}]}', b'{"a":4}\n', b'{"a":5}\n',
                  b'{"a":6}\n']
        for body in bodies:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/x", data=body)
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
        probe = ReceiverRecords("127.0.0.1", port, expected=5)
        assert probe() and probe.records == 5  # the ingest body is not JSON lines
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sample", timeout=5) as response:
            sample = response.read()
        sampled = records_of_bodies(sample)
        assert len(receiver.sample) == 2 and len(sampled) >= 2
        bodies_records = [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}, {"a": 5}, {"a": 6}]
        assert all(r in bodies_records for r in sampled)
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_peers_brings_its_rows_and_their_baselines() -> None:
    keys = needed(["peers", "latency"])
    assert set(PEER_ROWS) <= set(keys) and "tight" in keys
    assert needed(["latency"]) == []


def test_build_script_is_executable() -> None:
    script = Path(__file__).resolve().parents[3] / "bench" / "peers" / "build_fluent_bit.sh"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    for flag in ("-DFLB_RELEASE=Off", "-DCMAKE_BUILD_TYPE=Release", "-DFLB_OUT_HTTP=On",
                 "-DFLB_PREFER_SYSTEM_LIB_SQLITE=On"):
        assert flag in text


def test_input_parts_are_the_streamer_rows_parts_with_their_line_counts(
        tmp_path: Path) -> None:
    records = [record(i) for i in range(101)]
    source = write_ndjson(tmp_path / "in.ndjson", records)
    parts = input_parts(source, 2)
    assert [path.name for path, _ in parts] == ["part-0.ndjson", "part-1.ndjson"]
    assert sum(lines for _, lines in parts) == 101
    joined = b"".join(path.read_bytes() for path, _ in parts)
    assert joined == source.read_bytes()
    for path, lines in parts:
        assert len(path.read_bytes().splitlines()) == lines
    assert input_parts(source, 1) == [(source, 101)]
