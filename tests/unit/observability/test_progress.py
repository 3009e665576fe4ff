"""The progress line's numbers: percent of the input's size, rates, ETA, and
when a run gets one at all."""

from __future__ import annotations

import io
import os

from streamer.config.root import parse_config
from streamer.datadir.layout import DataDir
from streamer.observability.log_redact import Redactor
from streamer.observability.logs import ConsoleHandler
from streamer.observability.metrics import Metrics
from streamer.observability.progress import (
    Progress,
    finite_run,
    human_bytes,
    human_duration,
    input_totals,
)
from streamer.sources.file.checkpoint import save_checkpoint


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def config(tmp, sources: str):
    import tomllib

    text = f'data_dir = "{tmp}/data"\n{sources}\n[sinks.s]\ntype = "stage"\n' \
           f'url = "file://{tmp}/stage/"\ncolumns = ["a"]\n'
    return parse_config(tomllib.loads(text))


def test_line_shows_records_rate_percent_and_eta() -> None:
    metrics = Metrics()
    clock = Clock()
    progress = Progress(metrics, {"f": 40 * 1024 * 1024, "pipe": None},
                        ConsoleHandler(io.StringIO(), Redactor()), clock=clock)
    files, pipe = metrics.source("f"), metrics.source("pipe")
    assert progress.line() == ("streamer: 0 records, 0 rec/s, 0 B of 40.0 MiB read (0.0%), "
                               "ETA --")
    clock.now += 2
    files.records, files.bytes = 20_000, 10 * 1024 * 1024
    pipe.records, pipe.bytes = 1_000, 1024
    # 21k records in 2 s; 10 MiB of 40 read at ~5 MiB/s: 30 MiB left, 6 s
    assert progress.line() == ("streamer: 21,000 records, 10,500 rec/s, 10.0 MiB of 40.0 MiB "
                               "read (25.0%), ETA 0:06")
    clock.now += 1
    files.records, files.bytes = 80_000, 40 * 1024 * 1024
    files.finished = pipe.finished = True
    assert progress.line() == ("streamer: 81,000 records, 27,000 rec/s, 40.0 MiB of 40.0 MiB "
                               "read (100.0%), ETA --, input done, draining sinks")


def test_line_without_a_known_size_has_no_percent() -> None:
    metrics = Metrics()
    clock = Clock()
    progress = Progress(metrics, {"pipe": None}, ConsoleHandler(io.StringIO(), Redactor()),
                        clock=clock)
    progress.line()
    clock.now += 0.5
    metrics.source("pipe").records, metrics.source("pipe").bytes = 500, 3 * 1024 * 1024 // 2
    assert progress.line() == "streamer: 500 records, 1,000 rec/s, 1.5 MiB read"


def test_totals_are_file_sizes_less_checkpointed_offsets(tmp_path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.ndjson").write_bytes(b"x" * 1000)
    (tmp_path / "in" / "sub" / "b.ndjson").write_bytes(b"y" * 500)
    (tmp_path / "in" / "skip.txt").write_bytes(b"z" * 7)
    st = os.stat(tmp_path / "in" / "a.ndjson")
    save_checkpoint(DataDir(tmp_path / "data").checkpoint("files"), "files",
                    [{"path": "a", "dev": st.st_dev, "ino": st.st_ino, "fp": "", "fp_len": 0,
                      "offset": 300}])
    cfg = config(tmp_path, f"""
[sources.files]
type = "file"
paths = ["{tmp_path}/in/**/*.ndjson", "{tmp_path}/in/a.ndjson"]
follow = false
""")
    assert finite_run(cfg)
    assert input_totals(cfg) == {"files": 700 + 500}


def test_only_finite_runs_get_a_progress_line(tmp_path) -> None:
    finite = config(tmp_path, '[sources.i]\ntype = "stdin"\n'
                              f'[sources.f]\ntype = "file"\npaths = ["{tmp_path}/x"]\n'
                              'follow = false\n')
    followed = config(tmp_path, f'[sources.f]\ntype = "file"\npaths = ["{tmp_path}/x"]\n')
    socket = config(tmp_path, '[sources.i]\ntype = "stdin"\n'
                              '[sources.s]\ntype = "socket"\nlisten = "127.0.0.1:0"\n')
    assert finite_run(finite)
    assert not finite_run(followed)
    assert not finite_run(socket)


def test_human_units() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 1024 ** 2 + 1, 3 * 1024 ** 3)] == [
        "0 B", "1023 B", "1.0 KiB", "5.0 MiB", "3.0 GiB"]
    assert [human_duration(s) for s in (0, 59.6, 61, 3600 + 125)] == [
        "0:00", "1:00", "1:01", "1:02:05"]
