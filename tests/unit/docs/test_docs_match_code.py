"""The reference pages say what the code does: every configuration key of the pydantic
models is in docs/configuration.md and every key its tables name is one of them, with
the default the model has; every metric family has its row in docs/operations.md, of
its type and labels, and every row is a real family; every command and flag the docs
show is one `--help` lists."""

from __future__ import annotations

import argparse
import re
import tomllib
import typing
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from streamer.cli import _parser as build_parser
from streamer.config.root import Config
from tests.helpers.metric_samples import every_family_exposition

REPO = Path(__file__).resolve().parents[3]
CONFIGURATION = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
OPERATIONS = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
# what a document's table row looks like: | `key` ... | default | meaning |
ROW = re.compile(r"^\| (`[^|]+)\|([^|]*)\|", re.M)


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def config_fields() -> dict[str, list[FieldInfo]]:
    """Every key of the configuration by its last part (`load.table` -> `table`) and
    by its last two (`load.table`), each with the model fields of that name."""
    fields: dict[str, list[FieldInfo]] = {}

    def walk(model: type[BaseModel], parent: str) -> None:
        for name, field in model.model_fields.items():
            key = field.alias or name
            fields.setdefault(key, []).append(field)
            if parent:
                fields.setdefault(f"{parent}.{key}", []).append(field)
            for sub in _models(field.annotation):
                walk(sub, key)

    walk(Config, "")
    return fields


def documented_keys() -> dict[str, list[str]]:
    """The keys the configuration tables name (as `config_fields` names them), each
    with the default cells given for it."""
    keys: dict[str, list[str]] = {}
    table_of_keys = False
    for line in CONFIGURATION.splitlines():
        if line.startswith("| key |"):
            table_of_keys = True
        elif not line.startswith("|"):
            table_of_keys = False
        elif table_of_keys and (row := ROW.match(line)):
            names = re.findall(r"`([^`]+)`", row.group(1))
            defaults = re.split(r" / |, ", row.group(2).strip()) if len(names) > 1 else [
                row.group(2).strip()]
            for index, name in enumerate(names):
                key = ".".join(name.split("] ")[-1].split(".")[-2:])
                keys.setdefault(key, []).append(
                    defaults[index] if len(defaults) == len(names) else "")
    return keys


def test_every_configuration_key_is_documented() -> None:
    words = {part for text in re.findall(r"`([^`]+)`", CONFIGURATION)
             for part in re.split(r"[\s=,/.\[\]]+", text)}
    assert sorted(key for key in config_fields() if "." not in key and key not in words) == []


def test_every_documented_key_is_a_configuration_key() -> None:
    assert sorted(set(documented_keys()) - set(config_fields())) == []


def test_documented_defaults_are_the_models() -> None:
    fields, wrong = config_fields(), []
    for key, cells in documented_keys().items():
        defaults = [f.default for f in fields[key]
                    if f.default is not PydanticUndefined and not isinstance(f.default, BaseModel)
                    and f.default not in (None, "")]  # derived at run time: said in words
        for cell in cells:
            literal = re.fullmatch(r"`([^`]+)`", cell)
            if not literal or not defaults:
                continue
            try:
                value = tomllib.loads(f"v = {literal.group(1)}")["v"]
            except tomllib.TOMLDecodeError:
                continue  # a value said in words, e.g. `<data_dir>/streamer.duckdb`
            if value not in defaults:
                wrong.append(f"{key}: the docs say {value!r}, the model {defaults!r}")
    assert wrong == []


def every_family() -> dict[str, tuple[str, set[str]]]:
    """Each family the process exposes (name -> type, labels), one sample each, and the
    supervisor's own (`streamer_worker_*`, read from its source)."""
    families = {}
    for family in text_string_to_metric_families(every_family_exposition()):
        if family.name.startswith("streamer_"):
            labels = {label for sample in family.samples for label in sample.labels} - {"le"}
            families[family.name] = (family.type, labels)
    for name in [name for name in families if name.removesuffix("_created") != name]:
        if name.removesuffix("_created") in families:  # a histogram's creation time
            del families[name]
    supervisor = (REPO / "streamer" / "supervisor" / "fork.py").read_text(encoding="utf-8")
    for kind, name, labels in re.findall(
            r'(Gauge|Counter)MetricFamily\("(streamer_\w+)",[^)]*labels=\[([^\]]*)\]',
            supervisor):
        families[name] = (kind.lower(), set(re.findall(r'"(\w+)"', labels)))
    return families


def metric_rows() -> dict[str, tuple[str, set[str]]]:
    section = OPERATIONS.split("## Metrics and health", 1)[1].split("\n## ", 1)[0]
    table = section.split("| metric | type | labels | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        name_cell, kind, labels = (cell.strip() for cell in line.strip("|").split("|")[:3])
        for name in re.findall(r"`(streamer_\w+)`", name_cell):
            family = name.removesuffix("_total") if kind == "counter" else name
            rows[family] = (kind, {label.strip() for label in labels.split(",")} - {""})
    return rows


def test_every_metric_has_its_row_and_every_row_is_a_metric() -> None:
    families, rows = every_family(), metric_rows()
    assert len(families) > 40
    assert sorted(set(families) - set(rows)) == []  # metrics without a row
    assert sorted(set(rows) - set(families)) == []  # rows of no metric
    assert {name: rows[name] for name in families} == families  # type and labels


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, set[str]]:
    """`run` -> its flags, `loads retry` -> ..., from the CLI's own parser."""
    commands = {prefix.strip(): {flag for action in parser._actions
                                 for flag in action.option_strings}}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                commands.update(_commands(sub, f"{prefix}{name} "))
    return commands


@pytest.mark.parametrize("page", ["README.md", "docs/operations.md", "docs/guarantees.md",
                                  "docs/configuration.md", "docs/internals.md"])
def test_commands_and_flags_in_the_docs_are_the_clis(page: str) -> None:
    commands = _commands(build_parser())
    text = (REPO / page).read_text(encoding="utf-8")
    wrong = []
    for line in re.findall(r"(?:^|[`\s])streamer ([a-z][^`\n|)#]*)", text, re.M):
        words = line.split()
        command = next((" ".join(words[:n]) for n in (2, 1)
                        if " ".join(words[:n]) in commands), None)
        if command is None:
            continue  # prose ("streamer runs ..."), not a command line
        flags = {w.split("=")[0] for w in words if w.startswith("--")}
        wrong += [f"streamer {command} {flag}" for flag in flags - commands[command]
                  - commands[""]]
    assert wrong == []
