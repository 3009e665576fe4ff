"""The git revision a bench result names is the code that ran: a tree with changes
not committed says so (`-dirty`), as its figures are not that commit's."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.outcomes import git_revision


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_a_changed_tree_is_not_reported_as_its_commit(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", "code.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = git(tmp_path, "rev-parse", "--short", "HEAD")
    assert git_revision(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_revision(tmp_path) == f"{head}-dirty"
    git(tmp_path, "add", "code.py")  # staged, not committed: still not HEAD's code
    assert git_revision(tmp_path) == f"{head}-dirty"
    (tmp_path / "results.json").write_text("{}")  # untracked files are not the code
    git(tmp_path, "reset", "-q", "--hard")
    assert git_revision(tmp_path) == head


def test_no_repository_no_revision(tmp_path: Path) -> None:
    assert git_revision(tmp_path) is None
