"""Helpers shared by the test suites, one of each, by topic:

- process: `streamer` as a subprocess (run_cli, Daemon, stop)
- waiting: wait_until, wait_for_log, poll_until (async)
- records: test records, NDJSON, expected CSV cells, what the TD emulator stored
- csvfiles: local stage files read back and compared with the records
- configs: TOML snippets for configs, config data for parse_config
- datadir: dead letters, the stage journal, checkpoints
- api: /metrics and /health of a running daemon; the sink identity
- sockets: socket source producers
- s3: what an s3:// stage wrote

free_port comes from tests/fixtures/processes.py, with the rest the fixtures' own child
processes share. Import them all from here: `from tests.helpers import Daemon, wait_until`."""

from tests.fixtures.processes import free_port
from tests.helpers.api import (
    health,
    identity_problems,
    scrape,
    scrape_text,
    summary_identity_problems,
)
from tests.helpers.configs import (
    TD_RETRY,
    TD_SINK_KEY,
    base_config,
    config_data,
    config_problems,
    file_source,
    kafka_source,
    s3_stage_config,
    socket_source,
    stage_sink,
    td_sink,
    td_sink_model,
    toml_keys,
    toml_value,
)
from tests.helpers.csvfiles import (
    assert_same_multiset,
    assert_same_rows,
    assert_stage_covers,
    assert_stage_equals,
    count_stage_rows,
    parse_csv,
    read_stage_rows,
    stage_files,
    stage_ids,
)
from tests.helpers.datadir import checkpoint_offset, journal, read_dead_letters
from tests.helpers.process import (
    REPO,
    Daemon,
    Finished,
    run_cli,
    stop,
    streamer_cmd,
    summary_of,
    write_config,
)
from tests.helpers.records import (
    BENCH_COLUMNS,
    COLUMNS,
    csv_cell,
    expected_rows,
    make_records,
    multiset,
    ndjson,
    stored,
    write_ndjson,
)
from tests.helpers.s3 import incomplete_uploads, list_keys, read_rows, staged_keys
from tests.helpers.sockets import LISTENING, encode, frame, send_in_pieces, start
from tests.helpers.waiting import poll_until, wait_for_log, wait_until

__all__ = [
    "BENCH_COLUMNS", "COLUMNS", "LISTENING", "REPO", "TD_RETRY",
    "TD_SINK_KEY", "Daemon", "Finished", "assert_same_multiset", "assert_same_rows",
    "assert_stage_covers", "assert_stage_equals", "base_config", "checkpoint_offset",
    "config_data", "config_problems", "count_stage_rows", "csv_cell", "encode",
    "expected_rows", "file_source", "frame", "free_port", "health", "identity_problems",
    "incomplete_uploads", "journal", "kafka_source", "list_keys", "make_records", "multiset",
    "ndjson", "parse_csv", "poll_until", "read_dead_letters", "read_rows",
    "read_stage_rows", "run_cli", "s3_stage_config", "scrape", "scrape_text", "send_in_pieces",
    "socket_source", "stage_files", "stage_ids", "stage_sink", "staged_keys", "start", "stop",
    "stored", "streamer_cmd", "summary_identity_problems", "summary_of", "td_sink",
    "td_sink_model", "toml_keys", "toml_value", "wait_for_log", "wait_until", "write_config",
    "write_ndjson",
]
