"""TD refusing the write key (401/403) is not bad data: every record is dead-lettered
(as documented), and the operator must hear of it. /health says `degraded` with the
refusal while the last answer was one (ok again once a request is accepted), the
counter `streamer_td_key_refused_total` counts them, and a one-shot run exits 1."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

from tests.fixtures.td import TDEmulator
from tests.helpers import (
    Daemon,
    base_config,
    file_source,
    free_port,
    health,
    read_dead_letters,
    run_cli,
    scrape_text,
    stop,
    td_sink,
    wait_for_log,
    wait_until,
    write_config,
    write_ndjson,
)


def config(tmp_path: Path, emu: TDEmulator, *, follow: bool, api: str = "") -> Path:
    return write_config(tmp_path, base_config(tmp_path, api=api)
                        + file_source(tmp_path / "in.ndjson", follow=follow)
                        + td_sink(emu.url, api="ingest"))


def test_a_one_shot_run_whose_key_is_refused_exits_1(tmp_path: Path,
                                                     td_emulator: TDEmulator) -> None:
    records = [{"id": n} for n in range(30)]
    write_ndjson(tmp_path / "in.ndjson", records)
    result = run_cli("run", "-c", str(config(tmp_path, td_emulator, follow=False)),
                     env={"TD_WRITE_KEY": "wrong-key/zzz-4242"})
    assert result.code == 1, result.stderr[-3000:]
    sink = result.summary["sinks"]["td"]
    assert sink["dead_lettered"] == 30 and sink["key_refused"] == 1, sink
    letters = read_dead_letters(tmp_path / "data", "td")
    assert sorted(orjson.loads(d["raw"])["id"] for d in letters) == list(range(30))


@pytest.mark.parametrize(("status", "refusal"), [(403, "key_refused"), (404, "not_found"),
                                               (301, "not_found")])
def test_health_is_degraded_while_the_key_or_destination_is_refused(
        tmp_path: Path, td_emulator: TDEmulator, status: int, refusal: str) -> None:
    """404: the endpoint path or the database is wrong (test_td_not_found.py); 301: it
    moved (a redirect is not followed)."""
    write_ndjson(tmp_path / "in.ndjson", [{"id": n} for n in range(5)])
    port = free_port()
    td_emulator.set_faults(force_status=status)
    daemon = Daemon(config(tmp_path, td_emulator, follow=True, api=f"127.0.0.1:{port}"),
                    tmp_path / "run.log", env={"TD_WRITE_KEY": td_emulator.key})
    try:
        wait_for_log(daemon, "metrics and health on")
        wait_until(lambda: health(port)[1]["status"] == "degraded", what="degraded")
        code, body = health(port)
        assert code == 200
        td = body["sinks"]["td"]
        assert td["state"] == "degraded" and td[refusal].startswith(
            f"POST /test_db/events: HTTP {status}"), td
        assert f'streamer_td_{refusal}_total{{sink="td"}} 1.0' in scrape_text(port)
        td_emulator.set_faults()
        with (tmp_path / "in.ndjson").open("ab") as out:
            out.write(b'{"id": 5}\n')
        wait_until(lambda: len(td_emulator.records()) == 1, what="the next record")
        wait_until(lambda: health(port)[1]["status"] == "ok", what="ok again")
        assert refusal not in health(port)[1]["sinks"]["td"]
        stop(daemon)
    finally:
        daemon.stop()


def test_a_new_key_in_the_key_file_is_taken_by_sighup(tmp_path: Path,
                                                      td_emulator: TDEmulator) -> None:
    """The operator's way out of a refused key: the new key into `write_key_file`, then
    SIGHUP. The file's content is part of the sink's config, so the sink is rebuilt with
    it (before 2026-12-04 the reload said "no source or sink changed" and every record
    went on being dead-lettered with the old key)."""
    key_file = tmp_path / "td.key"
    key_file.write_text("revoked-key-0000\n")
    write_ndjson(tmp_path / "in.ndjson", [{"id": 0}])
    port = free_port()
    cfg = write_config(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{port}")
                       + file_source(tmp_path / "in.ndjson", follow=True)
                       + td_sink(td_emulator.url, api="ingest", write_key=None,
                                 extra=f'write_key_file = "{key_file}"'))
    daemon = Daemon(cfg, tmp_path / "run.log")
    try:
        wait_for_log(daemon, "metrics and health on")
        wait_until(lambda: "key_refused" in health(port)[1]["sinks"]["td"], what="refused")
        key_file.write_text(td_emulator.key + "\n")
        daemon.signal(signal.SIGHUP)
        wait_for_log(daemon, "reload done")
        with (tmp_path / "in.ndjson").open("ab") as out:
            out.write(b'{"id": 1}\n')
        wait_until(lambda: len(td_emulator.records()) == 1, what="the next record delivered")
        assert td_emulator.records()[0]["record"] == {"id": 1}
        wait_until(lambda: health(port)[1]["status"] == "ok", what="ok again")
        stop(daemon)
    finally:
        daemon.stop()
    assert [orjson.loads(d["raw"]) for d in read_dead_letters(tmp_path / "data", "td")] \
        == [{"id": 0}]
    assert "revoked-key-0000" not in daemon.log and td_emulator.key not in daemon.log
