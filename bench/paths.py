"""Where the bench lives, writes its results and keeps its inputs and run dirs."""

from __future__ import annotations

import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
WORKDIR = Path(tempfile.gettempdir()) / "streamer-bench"  # inputs (cached) and run dirs
