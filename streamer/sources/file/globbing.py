"""`paths` patterns expanded as `glob.glob(pattern, recursive=True)` does, except
that `**` visits each directory once (by device and inode).

glob follows every symlink to a directory at every level: a link to a parent
(`app/up -> ..`) is walked again through itself until the path is 40 links deep,
and two such links make that 2^40 paths -- the expansion never ends, and it runs
on the event loop.  Links to directories are still followed (a directory reached
through one is walked once, under the first path that reached it); hidden
directories are skipped by `**`, as glob skips them."""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterator

RECURSIVE = "**"


def expand(pattern: str) -> list[str]:
    """The paths `pattern` matches (files and directories, unsorted), each once."""
    parts = pattern.split(os.sep)
    if RECURSIVE not in parts:
        return glob.glob(pattern)
    at = parts.index(RECURSIVE)
    head, rest = os.sep.join(parts[:at]), os.sep.join(parts[at + 1:]) or "*"
    if at == 1 and not parts[0]:
        head = os.sep  # "/**/..."
    if glob.has_magic(head):
        bases = [b for b in glob.glob(head) if os.path.isdir(b)]
    else:
        bases = [head] if os.path.isdir(head or os.curdir) else []
    matched: list[str] = []
    # the usual `**/*.log`: names matched in the listing the walk made anyway
    last = os.sep not in rest and RECURSIVE not in rest
    for base in bases:
        for directory, names in _directories(base):
            if last:
                if not rest.startswith("."):  # as glob: `*` does not match hidden names
                    names = [n for n in names if not n.startswith(".")]
                matched.extend(os.path.join(directory, n) if directory else n
                               for n in fnmatch.filter(names, rest))
            else:
                prefix = glob.escape(directory) if directory else ""
                matched.extend(expand(os.path.join(prefix, rest)))
    return list(dict.fromkeys(matched))  # `**/**` reaches a path more than once


def expand_all(patterns: list[str], exclude: list[str]) -> list[tuple[str, list[str]]]:
    """Each pattern with the paths it matches that no `exclude` pattern matches
    (sorted; fnmatch over the whole path, so `*` crosses `/`)."""
    return [(pattern, sorted(path for path in expand(pattern)
                             if not any(fnmatch.fnmatchcase(path, x) for x in exclude)))
            for pattern in patterns]


def _directories(base: str) -> Iterator[tuple[str, list[str]]]:
    """`base` and every directory under it that is not hidden, each real
    directory once (a second path to it, through a link, is not walked), with
    the names it holds."""
    try:
        st = os.stat(base or os.curdir)
    except OSError:
        return
    seen = {(st.st_dev, st.st_ino)}
    pending = [base]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory or os.curdir) as listing:
                entries = list(listing)
        except OSError:
            continue
        yield directory, [entry.name for entry in entries]
        for entry in entries:
            try:
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                st = entry.stat()
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                pending.append(os.path.join(directory, entry.name) if directory
                               else entry.name)
