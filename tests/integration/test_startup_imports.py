"""A one-shot file -> local stage run imports what its config uses and nothing else:
the modules of other sources and sinks, the AWS SDK, Kafka's client, the metrics API
and prometheus-client (no API in a one-shot run) are a tenth of a second of start-up.
The run is `python -m streamer`'s own `main`, with `os._exit` (the way out of the run
and of each forked worker) listing `sys.modules` first, a file per process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    COLUMNS,
    REPO,
    assert_stage_equals,
    base_config,
    file_source,
    make_records,
    stage_sink,
    summary_of,
    write_config,
    write_ndjson,
)

RUN_LISTING_MODULES = """
import os, sys
out, exit_ = sys.argv.pop(1), os._exit
def listing_modules_exit(code):
    with open(f"{out}.{os.getpid()}", "w") as fh:
        fh.write("\\n".join(sorted(sys.modules)))
    exit_(code)
os._exit = listing_modules_exit
sys.argv[0] = "streamer"
from streamer.__main__ import main
main()
"""

# imported only by a config that uses them (a name and its submodules)
UNCONFIGURED = (
    "prometheus_client", "aiohttp", "aiobotocore", "botocore", "aiokafka", "pyarrow",
    "httptools", "urllib.request", "http.client",
    "streamer.observability.api", "streamer.supervisor.merged_api",
    "streamer.sinks.td.sink", "streamer.sinks.td.http_client", "streamer.sinks.stage.store.s3",
    "streamer.sinks.stage.parquet",
    "streamer.sources.kafka.source", "streamer.sources.socket.source",
    "streamer.sources.stdin.source", "streamer.loaders.duckdb", "streamer.loaders.timestream",
    "streamer.loaders.dataexchange",
    # DuckDB's Python package (0.1 s of CPU): a CSV stage needs only its C extension
    "duckdb",
)


@pytest.mark.parametrize("workers", [1, 2])
def test_one_shot_file_to_stage_imports_only_what_it_uses(tmp_path: Path, workers: int) -> None:
    records = make_records(3000)
    for part in range(2):
        write_ndjson(tmp_path / f"in-{part}.ndjson", records[part::2])
    config = write_config(tmp_path, base_config(tmp_path, workers=workers)
                          + file_source(str(tmp_path / "in-*.ndjson"), name="input",
                                        follow=False)
                          + stage_sink(tmp_path, columns=COLUMNS))

    done = subprocess.run([sys.executable, "-c", RUN_LISTING_MODULES,
                           str(tmp_path / "modules"), "run", "-c", str(config)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)

    assert done.returncode == 0, done.stderr[-3000:]
    assert summary_of(done.stderr)["sinks"]["stage"]["delivered"] == len(records)
    assert_stage_equals(tmp_path / "stage", records)
    unconfigured = UNCONFIGURED + (("streamer.supervisor.fork",) if workers == 1 else ())
    listings = sorted(tmp_path.glob("modules.*"))
    assert len(listings) == workers + (workers > 1)  # the supervisor's too
    for listing in listings:
        modules = set(listing.read_text().split())
        # each process ran the pipeline, or forked the workers that did
        assert {"_duckdb", "streamer.sinks.stage.sink", "streamer.sources.file.source"} <= modules
        unused = sorted(m for m in modules
                        if any(m == name or m.startswith(f"{name}.") for name in unconfigured))
        assert unused == [], listing.name


LISTING_AT_EXIT = """
import sys
out = sys.argv.pop(1)
sys.argv[0] = "streamer"
from streamer.__main__ import main
try:
    main()
finally:
    with open(out, "w") as fh:
        fh.write("\\n".join(sorted(sys.modules)))
"""


@pytest.mark.parametrize(("args", "code", "says"), [
    (["--version"], 0, "streamer 0.1.0"),
    (["check", "--help"], 0, "--connect"),
    (["run", "--no-progress"], 2, "the following arguments are required: -c/--config"),
])
def test_commands_without_a_config_import_neither_the_config_models_nor_asyncio(
        tmp_path: Path, args: list[str], code: int, says: str) -> None:
    """`--version`, `--help` and a usage error answer without the config's models
    (pydantic: a third of a second of CPU) and asyncio."""
    done = subprocess.run([sys.executable, "-c", LISTING_AT_EXIT, str(tmp_path / "modules"),
                           *args], capture_output=True, text=True, timeout=120, cwd=REPO)

    assert done.returncode == code, done.stderr[-3000:]
    assert says in done.stdout + done.stderr
    modules = set((tmp_path / "modules").read_text().split())
    assert "streamer.cli" in modules
    assert sorted(modules & {"pydantic", "asyncio", "streamer.config.root"}) == []
