"""Every runtime dependency installs from a wheel on each platform streamer supports:
`pip download --only-binary=:all:` from the package index (network needed) of the
`[project] dependencies` of pyproject.toml, markers evaluated for that platform."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.fixtures.processes import REPO

# every test in one xdist worker, so that the module's downloads run once
pytestmark = pytest.mark.xdist_group("install-downloads")

# (pip --platform tag, the marker environment of a CPython 3.11 there)
PLATFORMS = {
    "manylinux2014_x86_64": {"sys_platform": "linux", "platform_system": "Linux",
                             "platform_machine": "x86_64", "os_name": "posix"},
    "manylinux2014_aarch64": {"sys_platform": "linux", "platform_system": "Linux",
                              "platform_machine": "aarch64", "os_name": "posix"},
    "macosx_11_0_arm64": {"sys_platform": "darwin", "platform_system": "Darwin",
                          "platform_machine": "arm64", "os_name": "posix"},
    "macosx_10_15_x86_64": {"sys_platform": "darwin", "platform_system": "Darwin",
                            "platform_machine": "x86_64", "os_name": "posix"},
    "win_amd64": {"sys_platform": "win32", "platform_system": "Windows",
                  "platform_machine": "AMD64", "os_name": "nt"},
}


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def requirements_for(platform: str) -> list[str]:
    environment = {"python_version": "3.11", "python_full_version": "3.11.9",
                   "implementation_name": "cpython",
                   "platform_python_implementation": "CPython", **PLATFORMS[platform]}
    wanted = []
    for requirement in runtime_requirements():
        if requirement.marker is None or requirement.marker.evaluate(environment):
            wanted.append(f"{requirement.name}{requirement.specifier}")
    return wanted


def test_the_runtime_dependencies_are_the_ones_checked() -> None:
    names = {r.name for r in runtime_requirements()}
    assert {"pysimdjson", "hyperscan", "orjson", "duckdb", "uvloop"} <= names
    assert "cysimdjson" not in names  # Linux x86-64 wheels only
    assert "uvloop" not in {Requirement(r).name for r in requirements_for("win_amd64")}
    # Hyperscan 0.9 has aarch64 wheels for glibc 2.28+ only (0.7's clash with DuckDB's
    # allocator): there streamer/core/ndjson.py falls back to bytes.translate
    for platform in PLATFORMS:
        has_hyperscan = "hyperscan" in {Requirement(r).name for r in requirements_for(platform)}
        assert has_hyperscan == (platform != "manylinux2014_aarch64"), platform


def _pip_download(platform: str, directory: Path, requirements: list[str],
                  *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", *options, "--platform", platform, "--python-version", "3.11",
         "--implementation", "cp", "-d", str(directory), *requirements],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """(platform, "direct" | "closure") -> the directory pip downloaded into, every
    download running at once (they wait on the network, not the CPU)."""
    root = tmp_path_factory.mktemp("wheels")
    running = {}
    for platform in PLATFORMS:
        wanted = requirements_for(platform)
        for kind, options in (("direct", ("--no-deps",)),):
            directory = root / platform / kind
            running[platform, kind] = (directory,
                                       _pip_download(platform, directory, wanted, *options))
    for (platform, kind), (_, process) in running.items():
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"{platform} {kind}: {stderr[-3000:]}"
    return {key: directory for key, (directory, _) in running.items()}


def wheels_in(directory: Path) -> list[str]:
    files = sorted(p.name for p in directory.iterdir())
    assert all(name.endswith(".whl") for name in files), files
    return files


def project_names(wheels: list[str]) -> set[str]:
    return {name.split("-")[0].lower().replace("_", "-") for name in wheels}


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_every_runtime_dependency_has_a_wheel(
        platform: str, downloads: dict[tuple[str, str], Path]) -> None:
    names = {Requirement(r).name.lower().replace("_", "-") for r in requirements_for(platform)}
    assert project_names(wheels_in(downloads[platform, "direct"])) == names
