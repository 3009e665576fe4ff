"""`pip install .` (not editable, no extras) into a fresh virtualenv gives a working
`streamer`: the installed command, run away from the source tree, prints its version
and loads a small file into DuckDB through a local stage; the stage's C extension
and the mapping's DuckDB extension (setup.py) are built with it.  The wheel alone
runs the quick start: `streamer example` prints a shipped commented config that
loads stdin into DuckDB, and `--help` names where the installed docs are.  Without a compiler
the wheel is built all the same, without them (`optional=True`: the stage then uses
its SQL checks, the mapping its SQL timestamps).

The package is built once (`wheel`, module-scoped): `pip install .` is a PEP 517 wheel
build plus the install of that wheel, so the install test installs the wheel the
platform test inspects instead of building it again."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.processes import REPO

CONFIG = """
data_dir = "{tmp}/data"

[sources.input]
type = "file"
paths = ["{tmp}/input.ndjson"]
follow = false

[sinks.stage]
type = "stage"
url = "file://{tmp}/stage/"
columns = ["time", "host", "status"]

[sinks.stage.load]
type = "duckdb"
table = "events"

[sinks.stage.load.column_types]
time = "BIGINT"
status = "BIGINT"
"""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _source_copy(tmp_path: Path) -> Path:
    source = tmp_path / "src"  # a copy: a build writes build/ and *.egg-info beside it
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "streamer", source / "streamer",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.duckdb_extension"))
    return source


# both tests on one xdist worker, so that the module's wheel is built once; builds and
# pip take minutes on a loaded host (the wheel's build was 33 s alone, 278 s at load 20)
pytestmark = [pytest.mark.xdist_group("install-wheel"), pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The wheel `pip wheel` builds from a copy of the source tree, and its names."""
    root = tmp_path_factory.mktemp("build")
    path, names = _wheel(_source_copy(root), root / "wheel")
    return path, names


def test_pip_install_gives_a_working_streamer(tmp_path: Path,
                                               wheel: tuple[Path, list[str]]) -> None:
    venv = tmp_path / "venv"
    # ensurepip installs pip into it: a bound on the host (120 s ran out at load 20)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", str(wheel[0])],
        capture_output=True, text=True, timeout=900, env=_clean_env())
    assert pip.returncode == 0, pip.stderr[-3000:]
    streamer = venv / "bin" / "streamer"
    work = tmp_path / "work"  # neither the source tree nor its copy
    work.mkdir()

    version = subprocess.run([str(streamer), "--version"], capture_output=True, text=True,
                             cwd=work, env=_clean_env(), timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "streamer 0.1.0"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import streamer; print(streamer.__file__)"],
        capture_output=True, text=True, cwd=work, env=_clean_env(), timeout=60)
    assert where.stdout.startswith(str(venv)), where.stdout  # the installed copy runs
    built = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "from streamer.sinks.stage import nested_scan, _nested; "
         "from streamer.mapping import typed_c, _typed; "
         "print(nested_scan.AVAILABLE, _nested.__file__); "
         "print(typed_c.AVAILABLE, _typed.__file__)"],
        capture_output=True, text=True, cwd=work, env=_clean_env(), timeout=60)
    nested, typed = built.stdout.splitlines()
    assert nested.startswith(f"True {venv}"), built.stdout + built.stderr
    assert typed.startswith(f"True {venv}"), built.stdout + built.stderr
    loaded = subprocess.run(  # the mapping's C timestamp functions, loaded and checked
        [str(venv / "bin" / "python"), "-c",
         "from streamer.mapping import c_functions; "
         "print(c_functions.mapping_connection(1, [])[1], c_functions.EXTENSION)"],
        capture_output=True, text=True, cwd=work, env=_clean_env(), timeout=60)
    assert loaded.stdout.startswith(f"True {venv}"), loaded.stdout + loaded.stderr

    records = [{"time": 1700000000 + i, "host": f"h{i % 3}", "status": 200 + i}
               for i in range(50)]
    (work / "input.ndjson").write_text("".join(json.dumps(r) + "\n" for r in records))
    (work / "streamer.toml").write_text(CONFIG.format(tmp=work))
    run = subprocess.run([str(streamer), "run", "-c", "streamer.toml", "--no-progress"],
                         capture_output=True, text=True, cwd=work, env=_clean_env(),
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _loaded(venv, work, "data/streamer.duckdb", "time, host, status") == \
        [[r["time"], r["host"], r["status"]] for r in records]
    _quick_start_with_the_shipped_example(venv, work)


def _loaded(venv: Path, work: Path, database: str, columns: str) -> list[list]:
    """The rows of table `events` (ordered by time), read by the venv's own DuckDB."""
    rows = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         f"import duckdb, json; c = duckdb.connect({database!r}, read_only=True); "
         f"print(json.dumps(c.execute('SELECT {columns} FROM events "
         "ORDER BY time').fetchall()))"],
        capture_output=True, text=True, cwd=work, env=_clean_env(), timeout=60)
    assert rows.returncode == 0, rows.stderr
    return json.loads(rows.stdout)


def _quick_start_with_the_shipped_example(venv: Path, work: Path) -> None:
    """The README's quick start with no clone: an example the wheel ships, as its
    comment says (`zcat ... | STREAMER_DATA_DIR=... streamer run -c stdin-oneshot.toml`)."""
    streamer = str(venv / "bin" / "streamer")
    listing = subprocess.run([streamer, "example"], capture_output=True, text=True,
                             cwd=work, env=_clean_env(), timeout=60)
    assert listing.returncode == 0 and "stdin-oneshot" in listing.stdout, listing.stderr
    example = subprocess.run([streamer, "example", "stdin-oneshot"], capture_output=True,
                             text=True, cwd=work, env=_clean_env(), timeout=60)
    assert example.returncode == 0 and example.stdout.startswith("# A one-shot load")
    (work / "oneshot.toml").write_text(example.stdout)
    events = [{"time": 1700000000 + i, "user_id": i, "event": f"e{i % 4}",
               "amount": i / 4} for i in range(30)]
    run = subprocess.run(
        [streamer, "run", "-c", "oneshot.toml", "--no-progress"],
        input="".join(json.dumps(e) + "\n" for e in events), capture_output=True, text=True,
        cwd=work, env={**_clean_env(), "STREAMER_DATA_DIR": str(work / "load")}, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _loaded(venv, work, "load/events.duckdb", "time, user_id, event, amount") == \
        [[e["time"], e["user_id"], e["event"], e["amount"]] for e in events]
    helped = subprocess.run([streamer, "--help"], capture_output=True, text=True, cwd=work,
                            env=_clean_env(), timeout=60)
    data = Path(re.search(r"Installed with this package, in (\S+)/:",
                          " ".join(helped.stdout.split())).group(1))
    assert str(data).startswith(str(venv))
    for page in ("configuration", "operations", "guarantees", "internals", "performance"):
        assert (data / "docs" / f"{page}.md").read_bytes() == \
            (REPO / "docs" / f"{page}.md").read_bytes()
    assert (data / "README.md").read_bytes() == (REPO / "README.md").read_bytes()
    assert (data / "config" / "streamer.service").is_file()


def _wheel(source: Path, out: Path, **env: str) -> tuple[Path, list[str]]:
    """The one wheel `pip wheel` built into `out`, and its name and contents."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--disable-pip-version-check", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=600, env={**_clean_env(), **env})
    wheels = sorted(out.glob("streamer-*.whl"))
    assert build.returncode == 0 and len(wheels) == 1, build.stderr[-3000:]
    with zipfile.ZipFile(wheels[0]) as built:
        return wheels[0], [wheels[0].name, *built.namelist()]


def test_the_wheel_is_platform_specific_and_builds_without_a_compiler(
        tmp_path: Path, wheel: tuple[Path, list[str]]) -> None:
    _, names = wheel
    assert names[0].endswith(f"-{_python_tag()}-linux_{platform.machine()}.whl"), names[0]
    extension = f"streamer/sinks/stage/_nested{sysconfig.get_config_var('EXT_SUFFIX')}"
    timestamps = "streamer/mapping/streamer_ts.duckdb_extension"
    typed = f"streamer/mapping/_typed{sysconfig.get_config_var('EXT_SUFFIX')}"
    assert extension in names and timestamps in names and typed in names
    # no compiler: the build says so and goes on (CC=false fails every compile); a source
    # copy of its own, with no build/ left by a compiler
    _, names = _wheel(_source_copy(tmp_path), tmp_path / "without", CC="false")
    assert extension not in names and timestamps not in names and typed not in names
    assert "streamer/sinks/stage/nested_scan.py" in names
    assert "streamer/mapping/c_functions.py" in names
    assert "streamer/mapping/typed_c.py" in names


def _python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}-cp{sys.version_info.major}" \
           f"{sys.version_info.minor}"
