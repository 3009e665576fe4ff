"""`paths` expansion: glob.glob's matches on a tree without link loops; each
directory once through links to parents (glob's walk there never ends)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from streamer.sources.file.globbing import expand


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for path in ["a.log", "x/b.log", "x/y/c.log", "x/y/z/d.txt", ".hid/e.log", "x/.f.log",
                 "w[1]/g.log", "linked/h.log"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("{}\n")
    (tmp_path / "x" / "to-linked").symlink_to(tmp_path / "linked")
    return tmp_path


@pytest.mark.parametrize("pattern", [
    "**/*.log", "**", "x/**/*.log", "*/**/*.log", "**/y/*.log", "x/**", "**/*.txt",
    "w[[]1]/**/*.log", "x/y/**/**/*", "*.log", "x/*/c.log", "nothing/**/*.log"])
def test_the_same_matches_as_glob_without_loops(tree: Path, pattern: str) -> None:
    full = os.path.join(glob.escape(str(tree)), pattern)
    # the files (what a source reads; a trailing `**` also names directories)
    want = {p for p in glob.glob(full, recursive=True) if os.path.isfile(p)}
    got = [p for p in expand(full) if os.path.isfile(p)]
    # glob reaches linked/h.log twice (also through x/to-linked): each directory once here
    assert set(got) - want == set()
    assert len(got) == len(set(got))
    assert {os.path.realpath(p) for p in got} == {os.path.realpath(p) for p in want}


def test_relative_patterns_stay_relative(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    assert sorted(expand("**/*.txt")) == ["x/y/z/d.txt"]


def test_links_to_parents_are_walked_once(tmp_path: Path) -> None:
    (tmp_path / "app" / "old").mkdir(parents=True)
    (tmp_path / "app" / "old" / "b.log").write_text("{}\n")
    (tmp_path / "app" / "up").symlink_to("..")
    (tmp_path / "app" / "up2").symlink_to("..")
    (tmp_path / "app" / "old" / "up").symlink_to("../..")
    assert expand(f"{tmp_path}/**/*.log") == [f"{tmp_path}/app/old/b.log"]
