"""config/streamer.service: its hardening, rated by `systemd-analyze security`, and
streamer running under the unit's system-call filter and W^X rule (no systemd here:
tests/fixtures/systemd_sandbox.py applies them as systemd does)."""

from __future__ import annotations

import re
import subprocess
import sys

import duckdb
import orjson

from tests.fixtures.systemd_sandbox import allowed_calls, unit_settings
from tests.helpers import (
    REPO,
    base_config,
    file_source,
    free_port,
    make_records,
    read_dead_letters,
    stage_sink,
    stored,
    summary_of,
    td_sink,
    write_config,
)

UNIT = REPO / "config" / "streamer.service"
# the unit is at 1.4 ("OK" spans 1.0-4.9 in systemd-analyze; 5.8 was "MEDIUM")
MAX_EXPOSURE = 2.0


def test_security_rating_is_ok():
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNIT)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    level = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", out.stdout)
    assert level, out.stdout[-2000:]
    assert float(level[1]) <= MAX_EXPOSURE and level[2] in ("OK", "SAFE", "PERFECT"), level[0]


def test_unit_passes_systemd_analyze_verify(tmp_path):
    """Every line is one systemd knows (a typo in a hardening key is only a warning:
    the unit would run without it).  ExecStart points at this interpreter's streamer,
    as verify wants the program to exist."""
    unit = tmp_path / "streamer.service"
    unit.write_text(UNIT.read_text().replace("/opt/streamer/.venv/bin/streamer",
                                             f"{sys.executable} -m streamer"))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True, timeout=60)
    assert (out.returncode, out.stderr, out.stdout) == (0, "", "")


def test_unit_hardening_keys():
    settings = unit_settings(UNIT)
    expected = {
        "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
        "UMask": "0077", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
        "ProtectProc": "invisible", "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes", "RemoveIPC": "yes", "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "SystemCallErrorNumber": "EPERM", "Type": "notify",
    }
    assert {key: settings.get(key, [None])[-1] for key in expected} == expected
    assert settings["SystemCallFilter"] == ["@system-service", "~@privileged"]
    calls = allowed_calls(UNIT)
    # what streamer itself calls: workers (fork, pidfd, prctl), flock, madvise
    assert {"pidfd_open", "prctl", "flock", "madvise", "clone", "execve"} <= calls
    assert not {"setuid", "mount", "reboot", "init_module"} & calls


def test_runs_under_the_units_filter(tmp_path, td_emulator):
    """Every part a service uses -- file tailing, simdjson/hyperscan checks, CSV
    encoding and loads in DuckDB, the TD client, the API, two forked workers --
    works with the unit's system calls only and no writable executable memory."""
    records = make_records(3000)
    lines = [orjson.dumps(r) + b"\n" for r in records]
    (tmp_path / "in-0.ndjson").write_bytes(b"".join(lines[:1500]) + b'{"big": 1' + b"0" * 30
                                           + b"}\n")
    (tmp_path / "in-1.ndjson").write_bytes(b"".join(lines[1500:]) + b"not json\n")
    api = free_port()
    config = write_config(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{api}", workers=2)
                          + file_source(f"{tmp_path}/in-*.ndjson", name="input", follow=False)
                          + stage_sink(tmp_path, columns=["id", "host", "status"])
                          + "[sinks.stage.load]\ntype = \"duckdb\"\ntable = \"events\"\n"
                          + td_sink(td_emulator.url, api="ingest"))
    command = [sys.executable, str(REPO / "tests" / "fixtures" / "systemd_sandbox.py"),
               str(UNIT), "--", sys.executable, "-m", "streamer", "run", "-c", str(config)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "TD_WRITE_KEY": td_emulator.key,
                               "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = summary_of(proc.stderr)
    assert summary["sources"]["input"]["rejected"] == 2
    con = duckdb.connect(str(tmp_path / "data" / "streamer.duckdb"), read_only=True)
    rows = sorted(con.execute("SELECT id, host, status FROM events").fetchall(),
                  key=lambda row: int(row[0]))
    con.close()
    assert rows == [(str(r["id"]), r["host"], str(r["status"])) for r in records]
    assert sorted(r["id"] for r in stored(td_emulator)) == [r["id"] for r in records]
    reasons = sorted(d["reason"] for shard in (0, 1) for d in read_dead_letters(
        tmp_path / "data" / "shards" / str(shard), "input"))
    assert len(reasons) == 2 and "64-bit" in " ".join(reasons), reasons
