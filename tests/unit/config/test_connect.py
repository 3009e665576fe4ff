"""`check --connect` probes that need no server, and the command line's help."""

from pathlib import Path

import pytest

from streamer.cli import _parser
from streamer.config.connect import connect_report
from streamer.config.root import parse_config
from streamer.pipeline.registry import SINKS, SOURCES
from streamer.sinks.stage.connect import directory_writable, duckdb_file_usable
from streamer.sources.connect import _fixed_directory, file_paths_readable
from tests.helpers import config_data


def file_source(paths: list[str], follow: bool):
    data = config_data(sources={"logs": {"type": "file", "paths": paths, "follow": follow}})
    return parse_config(data, {}).sources["logs"]


def test_file_paths_readable(tmp_path: Path) -> None:
    (tmp_path / "a.ndjson").write_text("{}\n")
    (tmp_path / "b.ndjson").write_text("{}\n")
    assert file_paths_readable(file_source([f"{tmp_path}/*.ndjson"], False)) == (
        True, "2 file(s) readable")
    assert file_paths_readable(file_source([f"{tmp_path}/none-*.ndjson"], False)) == (
        False, f"{tmp_path}/none-*.ndjson: no file matches")
    # a followed pattern may match later, once its directory can be listed
    assert file_paths_readable(file_source([f"{tmp_path}/none-*.ndjson"], True)) == (
        True, "0 file(s) readable, waiting for matches")
    ok, why = file_paths_readable(file_source([f"{tmp_path}/no-dir/*.ndjson"], True))
    assert not ok and why.endswith(f"directory {tmp_path}/no-dir cannot be listed")


def test_a_file_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    dangling = tmp_path / "app.ndjson"  # matched by the glob, gone when opened
    dangling.symlink_to(tmp_path / "rotated-away.ndjson")
    assert file_paths_readable(file_source([f"{tmp_path}/*.ndjson"], True)) == (
        False, f"{dangling}: No such file or directory")


def test_fixed_directory_of_a_pattern() -> None:
    assert _fixed_directory("/var/log/app/*.ndjson") == Path("/var/log/app")
    assert _fixed_directory("/var/log/*/x.ndjson") == Path("/var/log")
    assert _fixed_directory("/var/log/app.ndjson") == Path("/var/log")
    assert _fixed_directory("*.ndjson") == Path(".")


def test_stage_directory_and_duckdb_file(tmp_path: Path) -> None:
    assert directory_writable(tmp_path) == (True, f"{tmp_path} writable")
    assert list(tmp_path.iterdir()) == []  # the probe file is gone
    assert directory_writable(tmp_path / "x" / "y") == (
        True, f"{tmp_path}/x/y will be created in {tmp_path}")
    (tmp_path / "file").write_text("")
    assert directory_writable(tmp_path / "file") == (False, f"{tmp_path}/file is not a directory")
    assert duckdb_file_usable(tmp_path / "db.duckdb") == (
        True, f"{tmp_path}/db.duckdb can be created")


async def test_report_lines_and_verdict(tmp_path: Path) -> None:
    (tmp_path / "in.ndjson").write_text("{}\n")
    data = config_data(
        sources={"logs": {"type": "file", "paths": [f"{tmp_path}/in.ndjson"], "follow": False},
                 "gone": {"type": "file", "paths": [f"{tmp_path}/gone.ndjson"],
                          "follow": False},
                 "pipe": {"type": "stdin"}},
        sinks={"stage": {"type": "stage", "url": f"file://{tmp_path}/stage/",
                         "columns": ["a"], "inputs": ["logs", "gone", "pipe"]}})
    lines, ok = await connect_report(parse_config(data, {}))
    assert not ok
    assert lines == [
        "connect:",
        "  source logs (file): ok -- 1 file(s) readable",
        f"  source gone (file): FAILED: {tmp_path}/gone.ndjson: no file matches",
        "  source pipe (stdin): ok -- nothing to try",
        f"  sink stage (stage local): ok -- {tmp_path}/stage will be created in {tmp_path}"]


def test_help_names_every_source_sink_loader_and_command(capsys) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for word in (*SOURCES, *SINKS, "duckdb", "Timestream", "Data Exchange", "check",
                 "--connect", "loads", "README.md", "config/examples/"):
        assert word in text, word


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("streamer ")
