"""A worker of several unmaps the library pages it shares (they stay in the page
cache and are mapped back on their next touch), never a page it holds a private
copy of: the relocations written into a library's RELRO pages, which a read-only
mapping of a file of our own, written before it was made read-only, stands for."""

import json
import subprocess
import sys

PROBE = r"""
import ctypes, hashlib, json, mmap, os, sys
import duckdb
from streamer.runtime.memory import unmap_shared_library_pages

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
SIZE = 8 * 1024 * 1024

def file_of(path):
    with open(path, "wb") as fh:
        fh.write(os.urandom(SIZE))
        os.fsync(fh.fileno())
    return os.open(path, os.O_RDONLY if path.endswith("clean") else os.O_RDWR)

def resident_kib(address):
    start = f"{address:x}-"
    lines = open("/proc/self/smaps").read().splitlines()
    for index, line in enumerate(lines):
        if line.startswith(start):
            return next(int(l.split()[1]) for l in lines[index + 1:] if l.startswith("Rss:"))

clean = mmap.mmap(file_of(sys.argv[1] + ".clean"), 0, flags=mmap.MAP_PRIVATE,
                  prot=mmap.PROT_READ)
digest = hashlib.sha256(clean).hexdigest()  # touches every page
copied_fd = file_of(sys.argv[1] + ".copied")
copied = libc.mmap(None, SIZE, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE,
                   copied_fd, 0)
ctypes.memset(copied + 4096, 0xAB, 16)  # a private copy of its second page
ctypes.string_at(copied, SIZE)  # every page mapped
libc.mprotect(ctypes.c_void_p(copied), ctypes.c_size_t(SIZE), mmap.PROT_READ)
clean_address = next(int(line.split("-")[0], 16) for line in open("/proc/self/maps")
                     if line.rstrip().endswith(".clean"))
con = duckdb.connect(config={"threads": 1})
query = "SELECT string_agg(i::VARCHAR || ':' || md5(i::VARCHAR), ',') FROM range(1000) t(i)"
rows = con.execute(query).fetchall()
before = resident_kib(clean_address), resident_kib(copied)
unmap_shared_library_pages()
after = resident_kib(clean_address), resident_kib(copied)
print(json.dumps({"before": before, "after": after,
                  "clean_intact": hashlib.sha256(clean).hexdigest() == digest,
                  "copy_kept": ctypes.string_at(copied + 4096, 16) == b"\xab" * 16,
                  "duckdb_same": con.execute(query).fetchall() == rows}))
"""


def test_clean_file_pages_are_unmapped_and_private_copies_kept(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "library")],
                         capture_output=True, text=True, check=True, timeout=60)
    probe = json.loads(out.stdout)
    (clean_before, copied_before), (clean_after, copied_after) = probe["before"], probe["after"]
    assert clean_before >= 8 * 1024 and clean_after == 0, probe  # unmapped, still cached
    assert copied_after == copied_before == 8 * 1024, probe  # a copy in it: left whole
    assert probe["copy_kept"] and probe["clean_intact"] and probe["duckdb_same"], probe
