"""A digest of what files a config names hold (certificates, keys), kept in a private
attribute of the model: models compare unequal when a file was rewritten in place,
so a reload (SIGHUP) rebuilds the component that reads it (pipeline/plan.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def files_digest(paths: Iterable[str | None]) -> str:
    """Unreadable or unset files count as such: their errors are the component's to
    report when it starts."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            digest.update(Path(path).read_bytes() if path else b"unset")
        except OSError:
            digest.update(b"unreadable")
        digest.update(b"\0")
    return digest.hexdigest()
