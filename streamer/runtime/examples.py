"""`streamer example [NAME]`: the commented configs shipped in the package, listed or
printed, and where its docs are.

streamer/_data/ holds links to the source tree's config/, docs/ and README.md; a
wheel holds their files (pyproject.toml's package data), so a user who installed
the wheel, not the clone, has them too."""

from __future__ import annotations

from pathlib import Path

from streamer.runtime.exit import ExitCode

DATA = Path(__file__).parent.parent / "_data"
EXAMPLES = DATA / "config" / "examples"
DOCS = DATA / "docs"


def example_names() -> list[str]:
    return sorted(path.stem for path in EXAMPLES.glob("*.toml"))


def _summary(name: str) -> str:
    """An example's first comment line (what job it is for)."""
    for line in (EXAMPLES / f"{name}.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and line.strip("# "):
            return line.strip("# ")
    return ""


def example_output(name: str | None) -> tuple[str, int]:
    """What `streamer example [NAME]` prints (stdout on exit 0, else stderr) and its
    exit code."""
    names = example_names()
    if name is None:
        width = max(map(len, names), default=0)
        listing = "\n".join(f"  {n.ljust(width)}  {_summary(n)}" for n in names)
        return (f"commented configs, one per job (`streamer example NAME > my.toml` "
                f"prints one):\n{listing}\nthey are in {EXAMPLES}/; the docs (every "
                f"config key, guarantees, operations, internals, performance) in {DOCS}/",
                ExitCode.OK)
    name = name.removesuffix(".toml")
    if name not in names:
        return (f"streamer example: no example {name!r}; there are: {', '.join(names)}",
                ExitCode.USAGE)
    return (EXAMPLES / f"{name}.toml").read_text(encoding="utf-8").rstrip("\n"), ExitCode.OK
