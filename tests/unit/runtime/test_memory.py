"""Start-up memory goes back to the kernel and nothing it held is lost.

The pages are those of read-only file mappings (libraries); a private read-only
mapping of a file of our own stands for one here, since the pytest process maps
DuckDB's library too, and pages mapped by two processes stay where they are.
"""

import json
import subprocess
import sys

PROBE = r"""
import hashlib, json, mmap, os, sys
import duckdb
from streamer.runtime.memory import release_startup_memory

def resident_file_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssFile:"))

path = sys.argv[1]
with open(path, "wb") as fh:
    fh.write(os.urandom(32 * 1024 * 1024))
    os.fsync(fh.fileno())
fd = os.open(path, os.O_RDONLY)
library = mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
digest = hashlib.sha256(library).hexdigest()  # touches every page
con = duckdb.connect(config={"threads": 1})
query = "SELECT string_agg(i::VARCHAR || ':' || md5(i::VARCHAR), ',') FROM range(1000) t(i)"
rows = con.execute(query).fetchall()
before = resident_file_kib()
release_startup_memory()
after = resident_file_kib()
with open(path, "rb") as fh:
    expected = hashlib.sha256(fh.read()).hexdigest()
print(json.dumps({"before": before, "after": after,
                  "mapping_intact": hashlib.sha256(library).hexdigest() == digest == expected,
                  "duckdb_same": con.execute(query).fetchall() == rows}))
"""


def test_pages_of_read_only_file_mappings_are_released_and_still_readable(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "library.bin")],
                         capture_output=True, text=True, check=True, timeout=60)
    probe = json.loads(out.stdout)
    assert probe["before"] - probe["after"] >= 30 * 1024, probe
    assert probe["mapping_intact"] and probe["duckdb_same"], probe
