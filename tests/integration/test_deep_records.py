"""Records nested deeper than orjson writes (255 to 1023 levels: the sources take
them, as simdjson and orjson.loads do) are written like any other record, by the
per-record encoder (a small batch), the native one (a large batch) and a TD
mapping.  Before 2026-12-05 such a record made `orjson.dumps` raise "Recursion
limit reached" in the per-record encoder: the pipeline failed (exit 1, nothing
delivered), and a daemon failed again on the same record at every restart."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest

from tests.fixtures.td import TDEmulator
from tests.helpers import (
    base_config,
    file_source,
    read_dead_letters,
    run_cli,
    toml_keys,
    write_config,
)

pytestmark = pytest.mark.timeout(120)

# the deepest value a record may hold: the record's own object is one more level
DEPTHS = {3: 300, 5: 600, 7: 1023}


def deep_value(depth: int) -> bytes:
    """`depth` levels of nesting, objects and arrays in turn, compact as orjson writes."""
    opening = b"".join(b'{"k":' if level % 2 == 0 else b"[" for level in range(depth))
    closing = b"".join(b"}" if level % 2 == 0 else b"]" for level in reversed(range(depth)))
    return opening + b'"\xc3\xa9"' + closing


def write_records(path: Path, count: int, depths: dict[int, int] = DEPTHS) -> dict[int, bytes]:
    """Records 0..count-1; those in `depths` hold a deep value; id -> the value's text."""
    values = {i: deep_value(depths[i]) if i in depths else b'{"n":%d}' % i for i in range(count)}
    path.write_bytes(b"".join(b'{"id":%d,"deep":%s,"plain":%s}\n' % (i, value, value)
                              for i, value in values.items()))
    return values


@pytest.mark.parametrize("count", [10, 400], ids=["per-record encoder", "native encoder"])
def test_deep_records_are_staged_and_loaded(tmp_path: Path, count: int) -> None:
    values = write_records(tmp_path / "in.ndjson", count)
    columns = [{"name": "id", "type": "integer"}, {"name": "deep", "type": "json"},
               "plain", {"name": "middle", "from": "deep.k", "type": "json"}]
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                          + file_source(tmp_path / "in.ndjson", name="f", follow=False)
                          + "[sinks.st]\n"
                          + toml_keys(type="stage", url=f"file://{tmp_path}/stage/",
                                      columns=columns, fsync=False)
                          + "[sinks.st.load]\n" + toml_keys(type="duckdb", table="events"))

    done = run_cli("run", "-c", str(config))

    assert done.code == 0, done.stderr[-3000:]
    assert done.summary["sinks"]["st"]["delivered"] == count
    con = duckdb.connect(str(tmp_path / "data" / "streamer.duckdb"), read_only=True)
    got = con.execute("SELECT id, deep::VARCHAR, plain FROM events ORDER BY id").fetchall()
    assert got == [(i, value.decode(), value.decode()) for i, value in values.items()]
    middle = dict(con.execute("SELECT id, middle::VARCHAR FROM events WHERE id IN (3, 5, 7)")
                 .fetchall())
    assert middle == {i: values[i][len(b'{"k":'):-len(b"}")].decode() for i in DEPTHS}
    assert read_dead_letters(tmp_path / "data", "st") == []


def test_deep_records_reach_td_through_a_mapping(tmp_path: Path,
                                                 td_emulator: TDEmulator) -> None:
    # an ingest request adds two levels: {"events": [record, ...]}
    values = write_records(tmp_path / "in.ndjson", 10, {3: 300, 5: 600})
    mapping = [{"name": "id", "type": "integer"}, {"name": "deep", "type": "json"}]
    config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                          + file_source(tmp_path / "in.ndjson", name="f", follow=False)
                          + "[sinks.td]\n"
                          + toml_keys(type="td", api="ingest", endpoint=td_emulator.url,
                                      database="test_db", table="events",
                                      write_key="${TD_WRITE_KEY}", mapping=mapping))

    done = run_cli("run", "-c", str(config), env={"TD_WRITE_KEY": td_emulator.key})

    assert done.code == 0, done.stderr[-3000:]
    stored = sorted((s["record"] for s in td_emulator.records(database="test_db",
                                                                table="events")),
                    key=lambda record: record["id"])
    assert stored == [{"id": i, "deep": orjson.loads(value)} for i, value in values.items()]
