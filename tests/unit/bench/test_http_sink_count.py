"""The bench's fallback HTTP sink counts the records it was sent (a postback request is
one, an ingest body its events), so a td row whose summary says every record was
delivered while the sink got fewer or more stops the bench."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import orjson
import pytest

from bench.file_to_td import http_sink, postback_url, sink_records, td_scenario
from bench.harness import BenchError, Run


def post(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def summary_run(delivered: int) -> Run:
    return Run(cmd=["x"], returncode=0, wall_s=1.0, peak_rss_bytes=0, hwm_bytes=0, cpu_s=1.0,
               samples=1, summary={"sinks": {"td": {"delivered": delivered}}}, stderr_tail="")


@pytest.fixture()
def sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no nginx: the counting sink
    with http_sink(tmp_path) as (url, kind):
        assert kind == "aiohttp"
        yield url


def test_the_sink_counts_postback_and_ingest_records(sink: str) -> None:
    assert sink_records(sink) == 0
    post(postback_url(sink), b'{"a":1}')
    events = [{"a": i, "b": "x,y"} for i in range(3)]
    post(f"{sink}/v1/ingest", orjson.dumps({"events": events}))
    assert sink_records(sink) == 4


def test_a_td_row_whose_sink_got_fewer_records_fails(sink: str, tmp_path: Path) -> None:
    input_path = tmp_path / "in.ndjson"
    input_path.write_bytes(b'{"a":1}\n{"a":2}\n')
    scenario = td_scenario("postback", tmp_path / "work", sink, input_path, 2, 4)
    scenario.prepare(0)
    post(postback_url(sink), b'{"a":1}')
    post(postback_url(sink), b'{"a":2}')
    scenario.validate(summary_run(2), 0)
    scenario.prepare(1)
    post(postback_url(sink), b'{"a":1}')  # one lost, the summary says both
    with pytest.raises(BenchError, match="the HTTP sink received 1 records, expected 2"):
        scenario.validate(summary_run(2), 1)
