"""Fluent Bit's configuration for the bench, and the output it must produce.

Its best configuration for NDJSON file -> CSV on this machine (measured): one ``tail``
input per input file (two inputs are 35-45% faster than one), ``Flush 0.2`` (the
default 1 s is 10-15% slower and doubles its memory), 128 KiB read buffers, threaded
inputs, the ``json`` parser; for CSV one ``file`` output per input with a ``template``
of the stage's columns (its ``csv`` format cannot restrict columns and adds a time
column); for HTTP one ``http`` output in ``json_lines``.

Limits of its template that the expected output (``template_line``) reproduces so that
the check compares bytes: values are written unquoted (a comma or quote inside a value
makes the line invalid CSV), null as ``nil``, floats as ``%f`` (6 decimals), a missing
key as ``{key}``, and ``{time}`` is always the record's *metadata* timestamp as ``%f``:
the parser must set it from a string field of the record (``time_from``).
"""

from __future__ import annotations

import calendar
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_VAR",
    "FluentBitConfig",
    "TimeFrom",
    "csv_config",
    "find_binary",
    "http_config",
    "template_line",
    "version",
]

#: The environment variable naming the binary (else ``fluent-bit`` on PATH).
ENV_VAR = "FLUENT_BIT"
_TEMPLATE_TIME = "time"  # the key Fluent Bit's template fills with the metadata time


def find_binary(env: Mapping[str, str] | None = None) -> Path | None:
    """``$FLUENT_BIT`` if set (it must be an executable file), else ``fluent-bit`` on
    PATH, else None."""
    env = os.environ if env is None else env
    named = env.get(ENV_VAR)
    if named:
        path = Path(named)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"{ENV_VAR}={named} is not an executable file")
        return path
    found = shutil.which("fluent-bit", path=env.get("PATH"))
    return Path(found) if found else None


def version(binary: Path) -> str:
    """The first line of ``binary --version`` (e.g. ``Fluent Bit v5.1.1``)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30,
                         check=False)
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "unknown version"


@dataclass(frozen=True)
class TimeFrom:
    """The string field of each record Fluent Bit's parser reads its timestamp from
    (``Time_Key``, ``Time_Format``; the field is kept).  Its json parser only takes a
    string there: an integer ``time`` field cannot be used."""

    key: str
    strptime: str  # the same format for Fluent Bit and Python's time.strptime

    def epoch(self, record: Mapping[str, Any]) -> float:
        return float(calendar.timegm(time.strptime(record[self.key], self.strptime)))


@dataclass(frozen=True)
class FluentBitConfig:
    """The files of one configuration: ``files`` name -> text, written into a directory;
    Fluent Bit runs with ``-c <dir>/fluent-bit.conf``."""

    files: Mapping[str, str]

    MAIN = "fluent-bit.conf"

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (directory / name).write_text(text, encoding="utf-8")
        return directory / self.MAIN


def _service(parsers_path: Path, flush_s: float) -> str:
    return (
        "[SERVICE]\n"
        f"    Flush        {flush_s:g}\n"
        "    Grace        -1\n"  # wait for every chunk when it is stopped
        "    Log_Level    warn\n"
        f"    Parsers_File {parsers_path}\n"
    )


def _parser(time_from: TimeFrom | None) -> str:
    text = "[PARSER]\n    Name   json\n    Format json\n"
    if time_from is not None:
        text += (f"    Time_Key    {time_from.key}\n"
                 f"    Time_Format {time_from.strptime}\n"
                 "    Time_Keep   On\n")
    return text


def _inputs(inputs: Sequence[Path]) -> str:
    # Exit_On_Eof stays off: with several inputs the first end of file stops them
    # all; the bench stops Fluent Bit once its output is complete.
    return "".join(
        "[INPUT]\n"
        "    Name              tail\n"
        f"    Tag               in{index}\n"
        f"    Path              {path}\n"
        "    Read_from_Head    On\n"
        "    Parser            json\n"
        "    Exit_On_Eof       Off\n"
        "    Buffer_Chunk_Size 128k\n"
        "    Buffer_Max_Size   128k\n"
        "    Threaded          On\n"
        for index, path in enumerate(inputs)
    )


def output_name(index: int) -> str:
    """The CSV file of input ``index`` in the output directory."""
    return f"out{index}.csv"


def csv_config(inputs: Sequence[Path], out_dir: Path, columns: Sequence[str],
               config_dir: Path, *, time_from: TimeFrom | None = None,
               flush_s: float = 0.2) -> FluentBitConfig:
    """tail (one input per file) -> one ``file`` output per input writing
    ``out_dir/out<i>.csv``, one line per record: the ``columns`` in a template.

    A ``time`` column is Fluent Bit's metadata timestamp: it needs ``time_from``.
    """
    if _TEMPLATE_TIME in columns and time_from is None:
        raise ValueError("Fluent Bit's template writes its own timestamp for {time}: "
                         "give time_from, a string field of the same time")
    for column in columns:
        if not column or any(c in column for c in "{}\n"):
            raise ValueError(f"column {column!r} cannot be named in a template")
    template = ",".join(f"{{{c}}}" for c in columns)
    outputs = "".join(
        "[OUTPUT]\n"
        "    Name     file\n"
        f"    Match    in{index}\n"
        f"    Path     {out_dir}\n"
        f"    File     {output_name(index)}\n"
        "    Format   template\n"
        f"    Template {template}\n"
        for index in range(len(inputs))
    )
    parsers = config_dir / "parsers.conf"
    return FluentBitConfig({
        FluentBitConfig.MAIN: _service(parsers, flush_s) + _inputs(inputs) + outputs,
        "parsers.conf": _parser(time_from),
    })


def http_config(inputs: Sequence[Path], host: str, port: int, uri: str,
                config_dir: Path, *, flush_s: float = 0.2) -> FluentBitConfig:
    """tail (one input per file) -> one ``http`` output POSTing the records as JSON lines
    (no date key added: the records as they were) to ``http://host:port/uri``."""
    output = (
        "[OUTPUT]\n"
        "    Name          http\n"
        "    Match         *\n"
        f"    Host          {host}\n"
        f"    Port          {port}\n"
        f"    URI           {uri}\n"
        "    Format        json_lines\n"
        "    json_date_key false\n"
    )
    parsers = config_dir / "parsers.conf"
    return FluentBitConfig({
        FluentBitConfig.MAIN: _service(parsers, flush_s) + _inputs(inputs) + output,
        "parsers.conf": _parser(None),
    })


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:f}"
    raise ValueError(f"no template rendering for a {type(value).__name__} value")


def template_line(record: Mapping[str, Any], columns: Sequence[str],
                  time_from: TimeFrom | None = None) -> str:
    """The line (without its newline) Fluent Bit's template of ``columns`` writes for
    ``record`` (flat records only: objects and arrays are printed in msgpack's own
    notation, not reproduced here)."""
    cells = []
    for column in columns:
        if column == _TEMPLATE_TIME:
            if time_from is None:
                raise ValueError("a time column needs time_from")
            cells.append(f"{time_from.epoch(record):f}")
        elif column in record:
            cells.append(_cell(record[column]))
        else:
            cells.append(f"{{{column}}}")
    return ",".join(cells)
