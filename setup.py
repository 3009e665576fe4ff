"""The optional C extensions (everything else is in pyproject.toml), both `optional=True`:
without a compiler the install goes on without them and the SQL they replace runs.

* a byte scan of a batch's nested values, `streamer/sinks/stage/_nested.c` (a Python
  module; without it, `streamer/sinks/stage/nested_scan.py`'s SQL checks);
* the column mapping's typed encoder, `streamer/mapping/_typed.c` (a Python module:
  the CSV rows of the records whose cells it proves; without it, the typed query's
  SQL, `streamer/mapping/typed_c.py`);
* the column mapping's timestamp conversions as DuckDB scalar functions,
  `streamer/mapping/streamer_ts.c`: not a Python module but a DuckDB extension of its
  stable C API, built as `streamer/mapping/streamer_ts.duckdb_extension` (DuckDB takes
  its entry point's name from the file's) with DuckDB's metadata footer appended here
  (loaded by `streamer/mapping/c_functions.py`; without it, the typed query's SQL)."""

import platform
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DUCKDB_EXTENSION = "streamer.mapping.streamer_ts"
FLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"]


def duckdb_platform() -> str:
    """DuckDB's name of this platform (`PRAGMA platform`) for the footer; DuckDB
    refuses to load a file whose footer names another."""
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64",
               "arm64": "arm64"}.get(platform.machine().lower(), platform.machine().lower())
    system = {"darwin": "osx", "win32": "windows"}.get(sys.platform, "linux")
    return f"{system}_{machine}"


def duckdb_footer() -> bytes:
    """DuckDB's extension metadata: 8 fields of 32 bytes, the last first (magic "4",
    platform, C API version, extension version, ABI type), then 256 bytes of
    signature (none: the extension is unsigned)."""
    fields = ["4", duckdb_platform(), "v1.2.0", "0.1", "C_STRUCT", "", "", ""]
    return b"".join(f.encode().ljust(32, b"\0") for f in reversed(fields)) + bytes(256)


class BuildExt(build_ext):
    def get_ext_filename(self, fullname: str) -> str:
        # called with the full name and with its last part (build_ext.get_ext_fullpath)
        if fullname.split(".")[-1] == DUCKDB_EXTENSION.split(".")[-1]:
            return str(Path(*fullname.split("."))) + ".duckdb_extension"
        return super().get_ext_filename(fullname)

    def build_extension(self, ext: Extension) -> None:
        super().build_extension(ext)
        if ext.name != DUCKDB_EXTENSION:
            return
        library = Path(self.get_ext_fullpath(ext.name))
        if not library.exists():  # optional: the compiler failed
            return
        footer = duckdb_footer()
        with library.open("rb+") as file:  # once: a build that was up to date has it
            file.seek(-len(footer), 2)
            if file.read() != footer:
                file.write(footer)


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[
        Extension("streamer.sinks.stage._nested", ["streamer/sinks/stage/_nested.c"],
                  extra_compile_args=FLAGS, optional=True),
        Extension(DUCKDB_EXTENSION, ["streamer/mapping/streamer_ts.c"],
                  depends=["streamer/mapping/timestamp_text.h"],
                  extra_compile_args=FLAGS, optional=True),
        Extension("streamer.mapping._typed", ["streamer/mapping/_typed.c"],
                  depends=["streamer/mapping/timestamp_text.h"],
                  extra_compile_args=FLAGS, optional=True),
    ])
