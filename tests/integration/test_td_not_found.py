"""TD answering 404 (405, 410) to every request is not bad data: the endpoint, its
path or the database is wrong (`api.treasuredata.com` for `in.treasuredata.com`, a
database that does not exist), so every record is dead-lettered and the operator must
hear of it, as for a refused key. /health says `degraded` with the answer while the
last answer of the kind was one (ok again once a request is accepted: tested with the
refused key's in test_td_key_refused.py), the counter `streamer_td_not_found_total`
counts them, and a one-shot run exits 1. Before
2026-12-04: every record dead-lettered, /health ok, exit 0. A 3xx on every request is
the same case (a redirect is not followed: the endpoint moved, e.g. http:// to https://
or another host); before 2026-12-05 it exited 0 with every record dead-lettered."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.fixtures.td import TDEmulator
from tests.helpers import (
    base_config,
    file_source,
    read_dead_letters,
    run_cli,
    td_sink,
    write_config,
    write_ndjson,
)


def config(tmp_path: Path, emu: TDEmulator, *, follow: bool, api: str = "",
           td_api: str = "ingest") -> Path:
    return write_config(tmp_path, base_config(tmp_path, api=api)
                        + file_source(tmp_path / "in.ndjson", follow=follow)
                        + td_sink(emu.url, api=td_api))


@pytest.mark.parametrize(("td_api", "status"), [("ingest", 404), ("postback", 405),
                                                ("ingest", 301), ("postback", 308)])
def test_a_one_shot_run_whose_destination_is_not_found_exits_1(
        tmp_path: Path, td_emulator: TDEmulator, td_api: str, status: int) -> None:
    records = [{"id": n} for n in range(30)]
    write_ndjson(tmp_path / "in.ndjson", records)
    td_emulator.set_faults(force_status=status)
    result = run_cli("run", "-c", str(config(tmp_path, td_emulator, follow=False,
                                             td_api=td_api)),
                     env={"TD_WRITE_KEY": td_emulator.key})
    assert result.code == 1, result.stderr[-3000:]
    sink = result.summary["sinks"]["td"]
    assert sink["dead_lettered"] == 30 and sink["not_found"] >= 1, sink
    letters = read_dead_letters(tmp_path / "data", "td")
    assert sorted(orjson.loads(d["raw"])["id"] for d in letters) == list(range(30))
    assert all(f"HTTP {status}" in d["reason"] for d in letters), letters[0]
