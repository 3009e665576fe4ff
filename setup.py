"""The optional C extension (everything else is in pyproject.toml): a byte scan of a
batch's nested values, `streamer/sinks/stage/_nested.c`.  `optional=True`: without a
compiler the install goes on without it, and the stage uses its SQL checks instead
(`streamer/sinks/stage/nested_scan.py`)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "streamer.sinks.stage._nested", ["streamer/sinks/stage/_nested.c"],
    extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    optional=True)])
