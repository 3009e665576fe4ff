"""Stage output formats end to end, `streamer run` as a subprocess: CSV, NDJSON and
Parquet files, plain, gzip or zstd, written locally and to S3 (moto), read back by
DuckDB and by Python and compared cell by cell with the records; the DuckDB loader
for each; Data Exchange importing Parquet objects; `check` refusing a format a
loader cannot take.  Bad values are dead-lettered as with CSV, and batches the native
encoder refuses come out of the per-record encoder in the same format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from tests.fixtures.batchload import BatchLoadEmulator
from tests.fixtures.moto_s3 import MotoServer
from tests.helpers import base_config, file_source, run_cli, toml_keys, write_config, write_ndjson
from tests.helpers.formats import (
    COLUMNS,
    SUFFIXES,
    duckdb_rows,
    python_rows,
    records,
    text_cells,
    want_rows,
)

pytestmark = pytest.mark.timeout(120)
N = 3000
REFUSED = range(1200, 1260)  # a batch the native encoder refuses: per record instead


def stage_config(tmp_path: Path, fmt: str, compression: str | None, *, url: str | None = None,
                 load: str = "", s3: str = "", extra: dict[str, Any] | None = None) -> Path:
    sink = {"type": "stage", "url": url or f"file://{tmp_path}/stage/", "columns": COLUMNS,
            "format": fmt, "compression": compression, "fsync": False,
            "max_file_records": 1000, "batch": {"max_records": 400}, **(extra or {})}
    text = (base_config(tmp_path, checkpoint_interval_s=None)
            + file_source(tmp_path / "in.ndjson", name="f", follow=False)
            + "[sinks.st]\n" + toml_keys(**sink) + s3 + load)
    return write_config(tmp_path, text)


def dead_letter_ids(tmp_path: Path) -> list[tuple[Any, str]]:
    path = tmp_path / "data" / "dead_letter" / "st.ndjson"
    letters = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return [(orjson.loads(d["raw"])["id"], d["reason"]) for d in letters]


@pytest.mark.parametrize(("fmt", "compression"), [
    ("csv", "gzip"), ("csv", "zstd"), ("ndjson", None), ("ndjson", "gzip"),
    ("ndjson", "zstd"), ("parquet", None), ("parquet", "zstd"), ("parquet", "none")])
def test_local_stage_files_read_back_cell_by_cell(tmp_path: Path, fmt: str,
                                                  compression: str | None) -> None:
    rows = records(N, refused=REFUSED)
    write_ndjson(tmp_path / "in.ndjson", rows)
    cells, bad = text_cells(rows)

    done = run_cli("run", "-c", str(stage_config(tmp_path, fmt, compression)))

    assert done.code == 0, done.stderr[-3000:]
    files = sorted((tmp_path / "stage").glob("*/part-*"))
    assert len(files) >= 3 and {f.name[f.name.index("."):] for f in files} == \
        {SUFFIXES[fmt, compression]}
    want = want_rows(cells, fmt)
    assert duckdb_rows(files, fmt) == want
    if fmt != "parquet":
        assert python_rows(files, fmt) == want
    sink = done.summary["sinks"]["st"]
    assert sink["delivered"] == len(cells) and sink["dead_lettered"] == len(bad)
    assert sink["native_encode_fallbacks"] >= 1  # REFUSED: per record, same cells
    assert dead_letter_ids(tmp_path) == bad  # as with CSV: the record, column and reason
    assert {reason.split(":")[0] for _, reason in bad} == {"column id", "column at"}


def test_parquet_in_s3_and_ndjson_zstd_read_back(tmp_path: Path, moto_s3: MotoServer,
                                                 s3_bucket: str) -> None:
    rows = records(N, refused=REFUSED)
    write_ndjson(tmp_path / "in.ndjson", rows)
    cells, _ = text_cells(rows)
    s3 = "[sinks.st.s3]\n" + toml_keys(endpoint_url=moto_s3.endpoint_url, region="us-east-1",
                                        part_bytes=5 * 1024 * 1024)
    client = moto_s3.s3()
    for fmt, compression in (("parquet", None), ("ndjson", "zstd")):
        config = stage_config(tmp_path, fmt, compression, s3=s3,
                              url=f"s3://{s3_bucket}/{fmt}/")
        done = run_cli("run", "-c", str(config), env=moto_s3.aws_env())
        assert done.code == 0, done.stderr[-3000:]
        keys = sorted(o["Key"] for o in client.list_objects_v2(
            Bucket=s3_bucket, Prefix=f"{fmt}/")["Contents"])
        assert keys and all(k.endswith(SUFFIXES[fmt, compression]) for k in keys)
        local = tmp_path / fmt
        local.mkdir()
        files = []
        for key in keys:
            files.append(local / key.replace("/", "_"))
            files[-1].write_bytes(client.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
        assert duckdb_rows(files, fmt) == want_rows(cells, fmt)
        head = client.head_object(Bucket=s3_bucket, Key=keys[0])
        assert head["ContentType"] == {"parquet": "application/vnd.apache.parquet",
                                       "ndjson": "application/zstd"}[fmt]
        (tmp_path / "data").rename(tmp_path / f"data-{fmt}")  # the next run starts afresh
        (tmp_path / f"{fmt}.toml").write_text(config.read_text())


@pytest.mark.parametrize(("fmt", "compression"), [
    ("csv", "zstd"), ("ndjson", "gzip"), ("parquet", None)])
def test_duckdb_loads_each_format_typed(tmp_path: Path, fmt: str,
                                        compression: str | None) -> None:
    rows = records(N, refused=REFUSED)
    write_ndjson(tmp_path / "in.ndjson", rows)
    cells, _ = text_cells(rows)
    load = "[sinks.st.load]\n" + toml_keys(type="duckdb", table="events")

    done = run_cli("run", "-c", str(stage_config(tmp_path, fmt, compression, load=load)))

    assert done.code == 0, done.stderr[-3000:]
    con = duckdb.connect(str(tmp_path / "data" / "streamer.duckdb"), read_only=True)
    got = con.execute("SELECT id, epoch_us(\"at\"), at_ms, score, ok, tags, name, host "
                      "FROM events ORDER BY id").fetchall()
    assert got == want_rows(cells, "parquet")
    assert not list((tmp_path / "stage").glob("*/part-*"))  # loaded, then deleted


@pytest.mark.parametrize(("sink", "message"), [
    ({"format": "parquet"}, "format: a timestream load reads CSV files only, not parquet"),
    ({"format": "ndjson"}, "format: a timestream load reads CSV files only, not ndjson"),
    ({"compression": "zstd"}, 'a timestream load needs plain CSV files (compression = "none")'),
    ({"format": "csv", "compression": "snappy"},
     "compression: 'snappy' is not available for format = \"csv\""),
])
def test_check_refuses_what_a_loader_cannot_take(tmp_path: Path, sink: dict[str, str],
                                                 message: str) -> None:
    load = ("[sinks.st.load]\n" + toml_keys(
        type="timestream", database="db1", table="tb1", time_column="at_ms",
        dimensions={"name": "name"}, measure_name="m",
        measures=[{"source": "score", "type": "DOUBLE"}]))
    fmt, compression = sink.get("format", "csv"), sink.get("compression")
    config = stage_config(tmp_path, fmt, compression, url="s3://some-bucket/stage/",
                          load=load)

    done = run_cli("check", "-c", str(config))

    assert done.code == 2
    (line,) = [line for line in done.stderr.splitlines() if "sinks.st" in line]
    assert line.startswith("sinks.st: ") and message in line


def test_data_exchange_imports_parquet_objects(tmp_path: Path, moto_s3: MotoServer,
                                               s3_bucket: str,
                                               batchload_emulator: BatchLoadEmulator) -> None:
    emu = batchload_emulator
    emu.configure(job_delay=0.05)
    data_set = emu.register_data_set()
    rows = records(N)
    write_ndjson(tmp_path / "in.ndjson", rows)
    cells, _ = text_cells(rows)
    s3 = "[sinks.st.s3]\n" + toml_keys(endpoint_url=moto_s3.endpoint_url, region="us-east-1")
    load = "[sinks.st.load]\n" + toml_keys(
        type="dataexchange", endpoint_url=emu.endpoint_url, data_set_id=data_set,
        poll_initial_s=0.1, poll_max_s=0.5)
    config = stage_config(tmp_path, "parquet", "zstd", url=f"s3://{s3_bucket}/dx/", s3=s3,
                          load=load)

    done = run_cli("run", "-c", str(config), env=moto_s3.aws_env())

    assert done.code == 0, done.stderr[-3000:]
    client = moto_s3.s3()
    (revision,) = emu.revisions(data_set)
    keys = sorted(a["Source"]["Key"] for a in emu.assets(data_set, revision["Id"]))
    assert len(keys) == 3 and all(k.endswith(".parquet") for k in keys)
    files = []
    for key in keys:
        files.append(tmp_path / key.replace("/", "_"))
        files[-1].write_bytes(client.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
    assert duckdb_rows(files, "parquet") == want_rows(cells, "parquet")


def test_a_parquet_file_closes_at_max_file_bytes_of_parquet(tmp_path: Path) -> None:
    """Batches are held for a row group, and written at once when they would make the
    file reach `max_file_bytes` (of Parquet bytes): every file but the last reaches it,
    every file read back is whole (footer and all), with its held rows."""
    rows = records(N)
    write_ndjson(tmp_path / "in.ndjson", rows)
    cells, bad = text_cells(rows)
    limit = 15_000
    config = stage_config(tmp_path, "parquet", None,
                          extra={"max_file_records": 100_000, "max_file_bytes": limit})

    done = run_cli("run", "-c", str(config))

    assert done.code == 0, done.stderr[-3000:]
    files = sorted((tmp_path / "stage").glob("*/part-*"))
    assert len(files) >= 2 and all(f.stat().st_size >= limit for f in files[:-1])
    assert duckdb_rows(files, "parquet") == want_rows(cells, "parquet")
    sink = done.summary["sinks"]["st"]
    assert sink["delivered"] == len(cells) and sink["dead_lettered"] == len(bad)
