"""A record longer than DuckDB's readers take by default (a 2 MB CSV line, a 16 MB JSON
object), with `max_line_bytes` raised for it as the configuration reference says, goes
through every stage format into DuckDB whole: not dead-lettered, not failing the run,
never dropped without a word (DuckDB's CSV reader returns no row at all for a line past
its buffer)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest

from tests.helpers import base_config, file_source, run_cli, toml_keys, write_config

pytestmark = pytest.mark.timeout(120)
# over DuckDB's CSV line (2 MB), which the NDJSON and Parquet encoders read their
# cells through too (the loaders' JSON objects past 32 MB: test_formats.py)
LONG = {"csv": 3 * 1024 * 1024, "parquet": 3 * 1024 * 1024, "ndjson": 3 * 1024 * 1024}


def records(size: int) -> list[dict]:
    """100 small records around a long one whose text needs CSV quoting."""
    long = {"id": 50, "text": ('say "hi", é\t' * (size // 12))[:size],
            "nested": {"k": "v" * 1000, "n": [1, 2.5, None]}}
    small = [{"id": i, "text": f"short {i}", "nested": {"i": i}} for i in range(100) if i != 50]
    return [*small[:50], long, *small[50:]]


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_a_long_record_is_loaded_whole_from_every_format(tmp_path: Path, fmt: str) -> None:
    rows = records(LONG[fmt])
    (tmp_path / "in.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    columns = [{"name": "id", "from": "id", "type": "integer"},
               {"name": "text", "from": "text", "type": "string"},
               {"name": "nested", "from": "nested", "type": "json"}]
    text = (base_config(tmp_path, checkpoint_interval_s=None)
            + file_source(tmp_path / "in.ndjson", name="f", follow=False,
                          extra=f"max_line_bytes = {2 * LONG[fmt]}")
            + "[sinks.st]\n" + toml_keys(type="stage", url=f"file://{tmp_path}/stage/",
                                          format=fmt, fsync=False, columns=columns)
            + "[sinks.st.load]\n" + toml_keys(type="duckdb", table="events"))

    done = run_cli("run", "-c", str(write_config(tmp_path, text)))

    assert done.code == 0, done.stderr[-3000:]
    assert not (tmp_path / "data" / "dead_letter").exists(), done.stderr[-3000:]
    con = duckdb.connect(str(tmp_path / "data" / "streamer.duckdb"), read_only=True)
    got = con.execute("SELECT id, text, nested::VARCHAR FROM events ORDER BY id").fetchall()
    assert got == [(r["id"], r["text"], orjson.dumps(r["nested"]).decode())
                   for r in sorted(rows, key=lambda r: r["id"])]
    assert done.summary["sinks"]["st"]["rows_loaded"] == len(rows)


# past DuckDB's CSV buffer for a compressed file (16 x its 2,000,000-byte line limit)
# and its JSON object limit: before 2026-12-05 read_csv returned no row for it and no
# error (then, with the accounting, the window failed: exit 1, nothing loaded)
FORTY_MB = 40_000_000
COMPRESSED = [("csv", "gzip"), ("csv", "zstd"), ("ndjson", "gzip")]


def test_a_40_mb_record_loads_whole_from_compressed_stages(tmp_path: Path) -> None:
    """One run, a sink per compressed text stage: the read limit comes from the
    source's max_line_bytes (loaders/duckdb_memory.py), so the record is a row."""
    rows = records(16)
    rows[50]["text"] = 'say "hi", é\t' + "y" * FORTY_MB  # quoted in CSV
    (tmp_path / "in.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    columns = [{"name": "id", "from": "id", "type": "integer"},
               {"name": "text", "from": "text", "type": "string"}]
    text = (base_config(tmp_path, checkpoint_interval_s=None)
            + file_source(tmp_path / "in.ndjson", name="f", follow=False,
                          extra=f"max_line_bytes = {FORTY_MB + 4096}"))
    for fmt, compression in COMPRESSED:
        text += (f"[sinks.{fmt}_{compression}]\n"
                 + toml_keys(type="stage", url=f"file://{tmp_path}/{fmt}_{compression}/",
                             format=fmt, compression=compression, fsync=False,
                             columns=columns)
                 + f"[sinks.{fmt}_{compression}.load]\n"
                 + toml_keys(type="duckdb", table=f"{fmt}_{compression}"))

    done = run_cli("run", "-c", str(write_config(tmp_path, text)))

    assert done.code == 0, done.stderr[-3000:]
    assert not (tmp_path / "data" / "dead_letter").exists(), done.stderr[-3000:]
    con = duckdb.connect(str(tmp_path / "data" / "streamer.duckdb"), read_only=True)
    for fmt, compression in COMPRESSED:
        got = con.execute(f"SELECT id, text FROM {fmt}_{compression} ORDER BY id").fetchall()
        assert got == [(r["id"], r["text"]) for r in sorted(rows, key=lambda r: r["id"])], (
            fmt, compression, len(got))
        assert done.summary["sinks"][f"{fmt}_{compression}"]["rows_loaded"] == len(rows)


def test_check_refuses_a_memory_limit_too_small_for_the_longest_rows(tmp_path: Path) -> None:
    text = (base_config(tmp_path)
            + file_source(tmp_path / "in.ndjson", name="f", extra="max_line_bytes = 80000000")
            + "[sinks.st]\n" + toml_keys(type="stage", url=f"file://{tmp_path}/stage/",
                                          compression="gzip", columns=["id"])
            + "[sinks.st.load]\n" + toml_keys(type="duckdb", table="t", memory_limit="300MB"))
    checked = run_cli("check", "-c", str(write_config(tmp_path, text)))
    assert checked.code == 2, checked.stdout + checked.stderr
    assert ("sinks.st.load.memory_limit = '300MB' cannot hold the 400,000,256 bytes DuckDB "
            "needs to read a gzip csv stage file with rows of sources.f.max_line_bytes = "
            "80,000,000") in checked.stdout + checked.stderr


STAGINGS = [(fmt, compression) for fmt in ("csv", "ndjson")
            for compression in ("none", "gzip", "zstd")] + \
           [("parquet", codec) for codec in ("snappy", "zstd", "gzip", "none")]


def test_the_accounting_passes_every_good_window_of_every_format(tmp_path: Path) -> None:
    """One run, one source, a sink per format x compression x exactly_once: every window
    loads (records the encoder dead-letters are not counted staged, nor rows DuckDB
    rejects counted missing)."""
    rows = [{"id": i if i % 97 else f"bad {i}", "text": f'line {i}, "quoted"\t{"é" * (i % 5)}'}
            for i in range(1, 1201)]
    (tmp_path / "in.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    columns = [{"name": "id", "from": "id", "type": "integer"},
               {"name": "text", "from": "text", "type": "string"}]
    sinks = {f"{fmt}_{compression}_{'once' if once else 'least'}": (fmt, compression, once)
             for fmt, compression in STAGINGS for once in (False, True)}
    text = (base_config(tmp_path, checkpoint_interval_s=None)
            + file_source(tmp_path / "in.ndjson", name="f", follow=False)
            + "".join(f"[sinks.{name}]\n" + toml_keys(
                type="stage", url=f"file://{tmp_path}/stage/{name}/", format=fmt,
                compression=compression, exactly_once=once, fsync=False, columns=columns,
                max_file_records=250, window_files=2)
                + f"[sinks.{name}.load]\n" + toml_keys(
                    type="duckdb", table="events", path=str(tmp_path / f"{name}.duckdb"))
                for name, (fmt, compression, once) in sinks.items()))

    done = run_cli("run", "-c", str(write_config(tmp_path, text)))

    assert done.code == 0, done.stderr[-3000:]
    want = [(r["id"], r["text"]) for r in rows if isinstance(r["id"], int)]
    for name in sinks:
        sink = done.summary["sinks"][name]
        assert "windows_failed" not in sink and sink["rows_loaded"] == len(want), (name, sink)
        con = duckdb.connect(str(tmp_path / f"{name}.duckdb"), read_only=True)
        got = con.execute("SELECT id, text FROM events ORDER BY id").fetchall()
        assert got == want, name
        con.close()
