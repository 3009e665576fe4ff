"""The network between streamer and TD misbehaves (tests/helpers/fault_proxy.py): a
one-shot run whose first connections to each TD API stall, drop or reset mid-answer,
answer byte by byte, never read, or answer `200 OK` with what TD never sends (a captive
portal's HTML, half a JSON body).  Every record is delivered (at least once), exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.td import TDEmulator
from tests.helpers import (
    base_config,
    file_source,
    make_records,
    multiset,
    run_cli,
    stored,
    td_sink,
    write_ndjson,
)
from tests.helpers.fault_proxy import MODES, FaultProxy

pytestmark = pytest.mark.timeout(120)


def test_every_record_reaches_td_through_a_misbehaving_network(
        tmp_path: Path, td_emulator: TDEmulator) -> None:
    records = make_records(400, seed=17)
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    # each of the first len(MODES) connections of each sink fails in its own way
    with FaultProxy(td_emulator.port, MODES, limit=len(MODES)) as postback, \
            FaultProxy(td_emulator.port, MODES, limit=len(MODES)) as ingest:
        config = tmp_path / "streamer.toml"
        config.write_text(
            "oneshot_give_up_s = 60\n" + base_config(tmp_path)
            + file_source([source], name="f", follow=False)
            + td_sink(postback.url, name="pb", timeout_s=2)
            + td_sink(ingest.url, name="in", api="ingest", timeout_s=2,
                      extra="batch = { max_records = 25, linger_ms = 20 }"))

        done = run_cli("run", "-c", str(config), env={"TD_WRITE_KEY": td_emulator.key},
                       timeout=100)

        faulted = (postback.faulted, ingest.faulted)
    assert done.code == 0, done.stderr[-3000:]
    want = multiset(records)
    for api in ("postback", "ingest"):
        got = multiset(stored(td_emulator, api=api))
        assert set(got) == set(want), (api, f"{len(set(want) - set(got))} records lost")
    assert faulted == (len(MODES), len(MODES))  # every mode met a request of each sink
    # a 200 that is not TD's answer is retried, and says why
    assert "HTTP 200 that is not TD's answer (text/html: '<!DOCTYPE html>" in done.stderr
    assert "HTTP 200 that is not TD's answer (application/json: " \
           "'{\"receipts\":[{\"success\":tr')" in done.stderr
    assert td_emulator.key not in done.stderr
    sinks = done.summary["sinks"]
    assert sinks["pb"]["delivered"] == sinks["in"]["delivered"] == len(records)
