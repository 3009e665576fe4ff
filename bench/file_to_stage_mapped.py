"""Benchmark: file -> local CSV stage with a 20-column mapping vs without one (issue #18).

    python -m bench.file_to_stage_mapped [--records 1000000] [--runs 3] [--workdir DIR]
                                         [--seed 1]

Both runs write the same 20 columns, one process each, alternating:

* ``file -> stage`` (no mapping): the flat bench.gen records, `columns` the 20 field
  names (today's cells, copied as they are);
* ``file -> stage, mapped``: the same records nested (``req``, ``svc``, ``user``
  objects, ``ts`` as ISO 8601 with an offset) and a mapping of 20 columns: nested
  paths, integer/double/string types, ``ts`` parsed and written as epoch ms, ``time``
  (epoch seconds) written as ISO 8601.

Prints the table and the mapped/plain ratio (target >= 0.9x).  ``python -m bench.run``
runs the mapped row too (``stage_mapped``), against its one-process ``file -> stage``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from bench.compare import compare
from bench.configs import config_text, file_source, toml_str
from bench.file_to_stage import prepare_input
from bench.gen import FIELDS, iter_records
from bench.harness import Scenario, script_parser, streamer_scenario
from bench.output_check import expect_stage

PLAIN, MAPPED = "file -> stage", "file -> stage, mapped"
GROUPS = {"req": ("method", "path", "status", "latency_ms", "bytes_in", "bytes_out"),
          "svc": ("host", "service", "level", "region"), "user": ("user_id", "session")}
TYPES = {"status": "integer", "latency_ms": "double", "bytes_in": "integer",
         "bytes_out": "integer", "user_id": "integer", "ratio": "double", "score": "double"}


def nest(record: dict) -> dict:
    out = {k: v for k, v in record.items() if not any(k in g for g in GROUPS.values())}
    out["ts"] = record["ts"].replace("Z", "+00:00")
    for group, keys in GROUPS.items():
        out[group] = {k: record[k] for k in keys}
    return out


def mapping() -> list[dict[str, str]]:
    """The 20 columns, in FIELDS order, from the nested records."""
    where = {k: f"{g}.{k}" for g, keys in GROUPS.items() for k in keys}
    columns = []
    for field in FIELDS:
        column = {"name": field, "from": where.get(field, field),
                  "type": TYPES.get(field, "string")}
        if field == "ts":
            column.update(type="timestamp", parse="iso8601", format="epoch_ms")
        if field == "time":
            column.update(type="timestamp", parse="epoch_s", format="iso8601")
        columns.append(column)
    return columns


def stage_section(url: str, columns: Sequence[object]) -> str:
    items = ", ".join("{ " + ", ".join(f"{k} = {toml_str(v)}" for k, v in c.items()) + " }"
                      if isinstance(c, dict) else toml_str(c) for c in columns)
    return (f'[sinks.stage]\ntype = "stage"\nurl = {toml_str(url)}\ncolumns = [{items}]\n'
            'max_file_records = 1000000\n[sinks.stage.load]\ntype = "none"\n')


def nested_input(flat: Path, n: int, seed: int) -> Path:
    path = flat.with_name(flat.stem + "-nested.ndjson")
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as out:
            for record in iter_records(n, seed):
                out.write(orjson.dumps(nest(record)) + b"\n")
        tmp.replace(path)
    return path


#: The columns the mapping writes as the flat records hold them: all but the two
#: timestamps it converts (``ts`` to epoch ms, ``time`` to ISO 8601).
AS_FLAT = tuple(field for field in FIELDS if field not in ("ts", "time"))


def mapped_scenario(workdir: Path, flat: Path, n: int, seed: int,
                    timeout: float | None = None) -> Scenario:
    """The mapped run (one process) over the nested form of the ``flat`` input; its
    stage must hold every record once, the columns of ``AS_FLAT`` as in ``flat``.
    The nested input is read into the page cache before each run, as the plain
    row's input is (``Scenario.inputs``)."""
    nested = nested_input(flat, n, seed)
    return streamer_scenario(MAPPED, n, workdir, "mapped", lambda d, _i: config_text(
        d / "data", file_source(nested),
        stage_section((d / "stage").as_uri() + "/", mapping())), sink="stage",
        check=expect_stage(MAPPED, flat, compared=AS_FLAT), timeout=timeout,
        inputs=[nested])


def main(argv: Sequence[str] | None = None) -> int:
    parser = script_parser(__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    flat = prepare_input(workdir, args.records, args.seed)
    scenarios = [
        streamer_scenario(PLAIN, args.records, workdir, "plain", lambda d, _i: config_text(
            d / "data", file_source(flat),
            stage_section((d / "stage").as_uri() + "/", FIELDS)), sink="stage",
            check=expect_stage(PLAIN, flat), inputs=[flat]),
        mapped_scenario(workdir, flat, args.records, args.seed),
    ]
    _, ratios = compare(scenarios, args.runs, PLAIN, labels={MAPPED: "mapped / plain"},
                        targets={MAPPED: 0.9})
    print(json.dumps({"mapped_over_plain": ratios[MAPPED].median}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
