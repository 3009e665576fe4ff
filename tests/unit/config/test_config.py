import pytest

from streamer.config.base import NAME_PATTERN
from streamer.config.root import ConfigError, load_config, parse_config
from tests.helpers import config_data, config_problems

BASE = config_data()


def with_sink(**changes):
    sink = {**BASE["sinks"]["stage"], **changes}
    return {**BASE, "sinks": {"stage": sink}}


def test_valid_config_and_defaults_merge():
    data = {**with_sink(batch={"max_records": 7}),
            "defaults": {"batch": {"linger_ms": 5, "max_records": 99},
                         "buffer": {"when_full": "drop_newest"}}}
    cfg = parse_config(data, {})
    sink = cfg.sinks["stage"]
    assert (sink.batch.max_records, sink.batch.linger_ms) == (7, 5)
    assert sink.buffer.when_full == "drop_newest"
    assert cfg.source_outputs("logs") == ["stage"]


def test_one_line_per_problem_naming_the_key():
    lines = config_problems(with_sink(max_file_records=0, columns=["a", "a"], bogus=1,
                               batch={"max_records": -1}))
    assert "sinks.stage.max_file_records: Input should be greater than 0" in lines
    assert "sinks.stage.columns: duplicate columns: a" in lines
    assert "sinks.stage.bogus: Extra inputs are not permitted" in lines
    assert "sinks.stage.batch.max_records: Input should be greater than 0" in lines
    assert len(lines) == 4


def test_an_empty_file_path_pattern_is_refused():
    # it matched nothing: `check` passed and the run only warned (before 2026-12-05)
    data = {**BASE, "sources": {"logs": {"type": "file", "paths": ["/var/log/*.log", ""]}}}
    assert config_problems(data) == [
        "sources.logs.paths[1]: String should have at least 1 character"]


def test_unknown_inputs_and_names_are_listed_with_the_field_errors():
    data = {**with_sink(max_file_records=0, inputs=["logs", "nope"]),
            "checkpoint_interval_s": -1}
    data["sources"] = {**data["sources"], "bad name": {"type": "stdin"},
                       "in2": {"type": "stdin", "bogus": 1}}
    assert sorted(config_problems(data)) == sorted([
        "checkpoint_interval_s: Input should be greater than 0",
        "sinks.stage.max_file_records: Input should be greater than 0",
        "sources.in2.bogus: Extra inputs are not permitted",
        "sinks.stage.inputs: unknown source 'nope'",
        f"sources.bad name: name must match {NAME_PATTERN}",
        "sources: only one stdin source is possible (bad name, in2)"])


def test_columns_equal_but_for_case_are_refused_for_a_duckdb_load():
    # DuckDB's names are case-insensitive: the table could not hold both (before:
    # `check` passed and every window failed with "Column ... already exists")
    lines = config_problems(with_sink(columns=["id", "Id", "msg"],
                                      load={"type": "duckdb", "table": "t"}))
    assert lines == ["sinks.stage: columns: Id and id are one column in DuckDB (names "
                     "are case-insensitive): rename one"]
    cfg = parse_config(with_sink(columns=["id", "Id"]), {})  # a stage alone: fine
    assert cfg.sinks["stage"].column_names == ["id", "Id"]


def test_a_column_name_with_a_line_break_is_refused_for_a_duckdb_loaded_csv_stage():
    # DuckDB's read_csv cannot take a header cell holding CR or LF, quoted or not
    # (before: `check` passed, and every window failed: "The CSV Parser state machine
    # reached an invalid state", or 0 rows read of N staged)
    for name in ("a\nb", "a\rb"):
        lines = config_problems(with_sink(columns=["id", name],
                                          load={"type": "duckdb", "table": "t"}))
        assert lines == [f"sinks.stage: columns: {name!r} holds a line break, which "
                         "DuckDB cannot read in a CSV header: name the column otherwise "
                         "(a mapping's `name`, with `from` naming the field)"]
    for fmt in ("ndjson", "parquet"):  # their readers take it
        parse_config(with_sink(columns=["id", "a\nb"], format=fmt,
                               load={"type": "duckdb", "table": "t"}), {})
    parse_config(with_sink(columns=["id", "a\nb"]), {})  # a stage alone: fine


def test_unknown_types_inputs_and_urls():
    data = {**BASE, "sources": {"x": {"type": "carrier-pigeon"}}}
    [line] = config_problems(data)
    assert line.startswith("sources.x: unknown type 'carrier-pigeon'; expected 'file', ")
    assert config_problems(with_sink(inputs=["nope"])) == [
        "sinks.stage.inputs: unknown source 'nope'"]
    assert config_problems(with_sink(url="ftp://x/"))[0].startswith("sinks.stage.url:")
    lines = config_problems(with_sink(load={"type": "duckdb", "table": "bad name"}))
    assert lines[0].startswith("sinks.stage.load.table:")
    lines = config_problems(with_sink(load={"type": "duckdb", "table": "t",
                                     "column_types": {"a": "BIGINT", "b": "BIGNT"}}))
    assert lines == ["sinks.stage.load.column_types: not DuckDB types: b = 'BIGNT'"]


@pytest.mark.parametrize("url", ["file://tmp/x/", "file://stage/", "file:/tmp/x/",
                                 "file:///", "file://localhost/tmp/x/"])
def test_a_file_url_must_be_three_slashes_and_an_absolute_path(url):
    (line,) = config_problems(with_sink(url=url))
    assert line.startswith(f"sinks.stage.url: {url!r}: a file url must be "
                           "file:///absolute/dir/ (three slashes"), line
    assert parse_config(with_sink(url="file:///tmp/x/"), {}).sinks["stage"].directory \
        .as_posix() == "/tmp/x"


def test_empty_inputs_is_an_error_naming_the_key():
    (line,) = config_problems(with_sink(inputs=[]))
    assert line.startswith("sinks.stage.inputs: an empty list feeds this sink nothing")
    assert parse_config(with_sink(inputs=["logs"]), {}).sink_inputs("stage") == ["logs"]


def test_env_expansion():
    data = {**BASE, "data_dir": "${DIR}/d", "instance_id": "${ID:-seven}"}
    cfg = parse_config(data, {"DIR": "/srv"})
    assert (cfg.data_dir, cfg.instance_id) == ("/srv/d", "seven")
    assert config_problems({**BASE, "data_dir": "${MISSING}"}) == [
        "data_dir: environment variable MISSING is not set"]
    assert parse_config({**BASE, "data_dir": "/a/$$b"}, {}).data_dir == "/a/$b"


def test_a_default_is_taken_for_a_variable_set_empty_as_the_shell_does():
    """`${VAR:-default}` is the shell's: the default for an unset *or empty*
    variable.  Before 2026-12-05 an empty one (systemd's `Environment=STREAMER_DATA_DIR=`)
    gave "": the example configs then ran in the working directory (`/` under
    systemd), staged under `file:///stage/` and served no API, and `check` said OK."""
    data = {**with_sink(url="file://${STAGE:-/srv/stage}/"), "data_dir": "${DIR:-/srv/d}",
            "api": {"listen": "${API:-127.0.0.1:9108}"}}
    cfg = parse_config(data, {"DIR": "", "STAGE": "", "API": ""})
    assert (cfg.data_dir, cfg.sinks["stage"].url, cfg.api.listen) == (
        "/srv/d", "file:///srv/stage/", "127.0.0.1:9108")
    assert parse_config({**BASE, "data_dir": "${DIR:-}/d"}, {}).data_dir == "/d"


def test_a_default_may_hold_a_reference():
    data = {**BASE, "data_dir": "${DIR:-/srv/${SUB:-x}}/d"}
    assert parse_config(data, {}).data_dir == "/srv/x/d"
    assert parse_config(data, {"SUB": "y"}).data_dir == "/srv/y/d"
    assert parse_config(data, {"DIR": "/a"}).data_dir == "/a/d"
    assert config_problems({**BASE, "data_dir": "${DIR:-/srv/${SUB}}"}) == [
        "data_dir: environment variable SUB is not set"]


@pytest.mark.parametrize("value", ["/srv/${DIR", "/srv/${}/d", "/srv/${1X}", "${DIR:-/a/${B}"])
def test_a_reference_that_is_not_one_is_an_error_not_a_literal(value):
    """Before 2026-12-05 these were kept as they are, e.g. a data_dir named
    `/srv/${DIR` (an unclosed brace); `$$` writes a literal `$`."""
    assert config_problems({**BASE, "data_dir": value})[0] == (
        "data_dir: a `${` that is not ${VAR} or ${VAR:-default} (write $$ for a literal $)")
    assert parse_config({**BASE, "data_dir": "/srv/$${DIR"}, {}).data_dir == "/srv/${DIR"


def test_an_empty_data_dir_is_refused():
    """"" was the working directory without a word (`check`: `data_dir: /CWD (relative: ,
    ...)`); an empty value is a mistake, e.g. a variable set empty."""
    assert config_problems({**BASE, "data_dir": ""}) == [
        "data_dir: String should have at least 1 character"]


def test_a_missing_variable_does_not_hide_the_other_problems():
    """Every problem in one pass: the value of a missing variable is not judged again."""
    data = {**with_sink(url="file://${STAGE_DIR}/", max_file_records=0, bogus=1),
            "instance_id": "${ID}"}
    assert sorted(config_problems(data)) == [
        "instance_id: environment variable ID is not set",
        "sinks.stage.bogus: Extra inputs are not permitted",
        "sinks.stage.max_file_records: Input should be greater than 0",
        "sinks.stage.url: environment variable STAGE_DIR is not set"]


def test_a_problem_in_defaults_is_one_line_naming_where_it_is_written(tmp_path):
    """[defaults.batch] / [defaults.buffer] problems were repeated under every sink
    (sinks.a.batch.max_records, sinks.b.batch.max_records, ...) besides their own line."""
    second = {**BASE["sinks"]["stage"], "batch": {"max_records": 10, "linger_ms": -1}}
    data = {**BASE, "sinks": {"stage": BASE["sinks"]["stage"], "other": second},
            "defaults": {"batch": {"max_records": 0, "bogus": 1, "max_bytes": 64},
                         "buffer": {"when_full": "maybe", "max_batches": 2}}}
    assert config_problems(data) == [
        "defaults.batch.max_records: Input should be greater than 0",
        "defaults.batch.bogus: Extra inputs are not permitted",
        "defaults.buffer.when_full: Input should be 'block' or 'drop_newest'",
        "sinks.other.batch.linger_ms: Input should be greater than or equal to 0"]
    # the good defaults still apply where the config is valid
    good = {**data, "defaults": {"batch": {"max_bytes": 64}, "buffer": {"max_batches": 2}}}
    good["sinks"] = {"stage": BASE["sinks"]["stage"],
                     "other": {**second, "batch": {"max_records": 10}}}
    cfg = parse_config(good, {})
    assert [(s.batch.max_records, s.batch.max_bytes, s.buffer.max_batches)
            for s in cfg.sinks.values()] == [(5000, 64, 2), (10, 64, 2)]


def test_toml_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("data_dir = \n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert "TOML syntax error" in info.value.problems[0]
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize("kind", ["directory", "latin-1"])
def test_a_config_file_that_cannot_be_read_is_one_problem(tmp_path, kind):
    """`-c /etc/streamer` (a directory) or a file saved as latin-1: a traceback
    (IsADirectoryError, UnicodeDecodeError) and exit 1 before."""
    path = tmp_path / "streamer.toml"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b'data_dir = "/tmp/\xe9t\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert problem.startswith(f"{path}: ")
    assert ("Is a directory" if kind == "directory" else "not UTF-8") in problem
