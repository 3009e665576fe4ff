"""A checkpoint or a stage journal that is not what streamer wrote (emptied, edited
by hand, copied from another version): the run reads nothing, says which file and
what to do in one line, keeps the file as it is, and exits 1.  Before 2026-12-05:
"pipeline failed" and a traceback ending in `JSONDecodeError` or `KeyError: 'dev'`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import base_config, file_source, run_cli, stage_sink, write_config

pytestmark = pytest.mark.timeout(120)

BAD = {
    "checkpoint empty": ("checkpoints/events.json", b""),
    "checkpoint not an object": ("checkpoints/events.json", b"[1, 2]"),
    "checkpoint entry without its inode": (
        "checkpoints/events.json",
        b'{"version": 1, "source": "events", "files": [{"path": "/x", "offset": 5}]}'),
    "journal event of another kind": ("journal/stage.ndjson", b'{"x": 1}\n'),
}


@pytest.mark.parametrize("case", list(BAD))
def test_an_unreadable_state_file_is_one_line_and_exit_1(tmp_path: Path, case: str) -> None:
    source = tmp_path / "in.ndjson"
    source.write_bytes(b'{"a": 1, "b": "x"}\n' * 20)
    config = write_config(tmp_path, base_config(tmp_path) + file_source(source, follow=False)
                          + stage_sink(tmp_path, extra='load = { type = "duckdb", table = "t" }'))
    first = run_cli("run", "-c", str(config))
    assert first.code == 0, first.stderr
    relative, content = BAD[case]
    state = tmp_path / "data" / relative
    assert state.exists()
    state.write_bytes(content)
    source.write_bytes(source.read_bytes() + b'{"a": 2, "b": "y"}\n')

    done = run_cli("run", "-c", str(config))

    assert done.code == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, done.stderr
    assert f"{state}: not a {'checkpoint' if 'checkpoint' in case else 'stage journal'} " \
           "streamer wrote" in errors[0], errors[0]
    assert "it is left as it is" in errors[0], errors[0]
    assert state.read_bytes() == content
    summary = done.summary
    assert summary["exit_code"] == 1
    assert summary["sinks"]["stage"]["delivered"] == 0, summary
    if "journal" in case:  # `streamer loads retry` reads the journal too
        retried = run_cli("loads", "retry", "-c", str(config))
        assert retried.code == 1, retried.stderr
        assert "Traceback" not in retried.stderr, retried.stderr
        assert retried.stdout.startswith(f"{state}: not a stage journal streamer wrote"), \
            retried.stdout
        assert state.read_bytes() == content
