"""Every sink stalled for 30 s while input keeps arriving: memory stays bounded, the
reader stops, and everything is delivered once the sinks recover (issue #6)."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from tests.fixtures.moto_s3 import TcpProxy
from tests.fixtures.td import TDEmulator
from tests.helpers import (
    Daemon,
    assert_stage_equals,
    base_config,
    file_source,
    free_port,
    make_records,
    multiset,
    scrape,
    stage_sink,
    stop,
    stored,
    summary_identity_problems,
    summary_of,
    td_sink,
    wait_until,
    write_config,
    write_ndjson,
)
from tests.reliability.helpers import Watcher

pytestmark = pytest.mark.timeout(150)

STALL_S = 30.0
RSS_BOUND = 300 * 2**20
FSIZE_LIMIT = 256 * 1024  # stage writes past 256 KiB fail with EFBIG: a full disk


def test_all_sinks_stalled_30s_bounded_memory_then_everything_delivered(
        tmp_path: Path, td_emulator: TDEmulator, record_property) -> None:
    initial, per_second = 40_000, 1000
    records = make_records(initial, seed=21)
    source = tmp_path / "in.ndjson"
    write_ndjson(source, records)
    port = free_port()
    with TcpProxy("127.0.0.1", td_emulator.port) as td_proxy:
        td_proxy.disable("hang")  # TD accepts connections and never answers
        text = (base_config(tmp_path, api=f"127.0.0.1:{port}") + file_source(source)
                + stage_sink(tmp_path)
                + td_sink(td_proxy.endpoint_url, api="ingest", timeout_s=2,
                          retry={"initial_backoff_ms": 50, "max_backoff_ms": 1000}))
        daemon = Daemon(write_config(tmp_path, text), tmp_path / "daemon.log",
                        env={"TD_WRITE_KEY": td_emulator.key})
        hard = resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE)[1]
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (FSIZE_LIMIT, hard))
        try:
            with Watcher(daemon, port, ["stage", "td"], "events") as watcher:
                def failing(sink: str) -> bool:
                    return scrape(port).get(("streamer_sink_retries_total",
                                             (("sink", sink),)), 0) > 0

                wait_until(lambda: failing("stage") and failing("td"), timeout=60,
                           what="both sinks failing and retrying")
                stall_start = time.monotonic()
                while time.monotonic() - stall_start < STALL_S:  # input keeps arriving
                    more = make_records(per_second, seed=len(records), start=len(records))
                    write_ndjson(source, more, mode="ab")
                    records += more
                    time.sleep(1.0)
                stall_end = time.monotonic()
                metrics = scrape(port)
                delivered = {s: metrics[("streamer_sink_delivered_total", (("sink", s),))]
                             for s in ("stage", "td")}
                # the sinks recover: the disk frees up, TD answers again
                resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
                td_proxy.enable()

                def settled() -> bool:
                    m = scrape(port)
                    return all(
                        m.get(("streamer_sink_delivered_total", (("sink", s),))) == len(records)
                        and m.get(("streamer_sink_in_flight_records", (("sink", s),))) == 0
                        for s in ("stage", "td"))

                wait_until(settled, timeout=90, what="everything delivered after the stall")
            stop(daemon)
        finally:
            daemon.stop()
    assert not watcher.problems, watcher.problems[:5]
    stalled = watcher.between(stall_start, stall_end)
    assert stalled and stalled[-1][0] - stalled[0][0] > STALL_S - 2
    peak = max(rss for _, rss, _ in stalled)
    assert peak < RSS_BOUND, f"peak RSS {peak / 2**20:.0f} MiB during the stall"
    # the reader stopped: nothing more read during the last two thirds of the stall,
    # although the file kept growing
    late = [read for t, _, read in stalled if t >= stall_start + STALL_S / 3]
    assert late[0] == late[-1] < source.stat().st_size, (late[0], late[-1])
    assert delivered["stage"] == 0  # a batch (5000 records) is far over 256 KiB
    assert delivered["td"] == 0
    summary = summary_of(daemon.log)
    assert not summary_identity_problems(summary)
    assert_stage_equals(tmp_path / "stage", records)
    assert multiset(stored(td_emulator)) == multiset(records)
    print(f"{len(records)} records ({initial} before the stall, {len(records) - initial} "
          f"during it); both sinks stalled {STALL_S:.0f} s: peak RSS {peak / 2**20:.0f} MiB, "
          f"read stopped at {late[-1] / 2**20:.1f} of {source.stat().st_size / 2**20:.1f} MiB; "
          f"lost 0, duplicates 0")
    record_property("peak_rss_mib", round(peak / 2**20))
