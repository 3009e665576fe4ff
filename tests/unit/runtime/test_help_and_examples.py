"""`streamer --help` against the config model (every source, sink, loader, stage
format and compression it takes is named; the stage once said "CSV files"), and
`streamer example`: the commented configs and docs the help points to, in the
package (a wheel user has no clone: tests/install checks the wheel)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from streamer.cli import _parser, main
from streamer.loaders.config import LoadConfig
from streamer.sinks.config import SinkConfig
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sources.config import SourceConfig
from streamer.sources.socket.config import SocketSourceConfig
from tests.helpers import REPO


def _types(union: typing.Any) -> set[str]:
    """The `type` values of a discriminated union of config models."""
    models = typing.get_args(typing.get_args(union)[0])
    return {value for model in models
            for value in typing.get_args(model.model_fields["type"].annotation)}


def _literals(model: type, field: str) -> set[str]:
    return {value for arg in typing.get_args(model.model_fields[field].annotation)
            for value in typing.get_args(arg) or [arg] if isinstance(value, str)}


def _section(help_text: str, name: str) -> str:
    """The description's `name:` paragraph (up to the next section)."""
    found = re.search(rf"^{name}:(.*?)(?=^\S|\Z)", help_text, re.M | re.S)
    assert found, name
    return " ".join(found.group(1).split())


def test_the_description_names_everything_the_config_takes() -> None:
    text = _parser().format_help()
    assert _types(SourceConfig) == {"file", "stdin", "socket", "kafka"}
    sources, sinks, loaders = (_section(text, n) for n in ("sources", "sinks", "loaders"))
    assert all(re.search(rf"\b{t}\b", sources) for t in _types(SourceConfig)), sources
    assert all(re.search(rf"\b{t}\b", sinks) for t in _types(SinkConfig)), sinks
    assert all(re.search(rf"\b{t}\b", loaders) for t in _types(LoadConfig) - {"none"}), loaders
    stage = sinks[sinks.index("stage"):]
    for value in (_literals(StageSinkConfig, "format")
                  | _literals(StageSinkConfig, "compression") - {"none"}):
        assert re.search(rf"\b{value}\b", stage), (value, stage)
    assert "CSV files" not in text
    for framing in _literals(SocketSourceConfig, "framing"):
        assert framing.replace("_", "-") in sources


def test_the_help_names_where_the_installed_docs_and_examples_are() -> None:
    text = " ".join(_parser().format_help().split())
    data = Path(re.search(r"Installed with this package, in (\S+)/:", text).group(1))
    assert (data / "docs" / "configuration.md").read_bytes() == \
        (REPO / "docs" / "configuration.md").read_bytes()
    assert (data / "README.md").read_bytes() == (REPO / "README.md").read_bytes()
    for name in ("streamer.service", "grafana-dashboard.json"):
        assert (data / "config" / name).read_bytes() == (REPO / "config" / name).read_bytes()


def test_example_lists_every_shipped_config_and_prints_one(capsys) -> None:
    names = sorted(p.stem for p in (REPO / "config" / "examples").glob("*.toml"))
    assert len(names) >= 6
    assert main(["example"]) == 0
    listing = capsys.readouterr().out
    assert re.findall(r"^  (\S+)  ", listing, re.M) == names
    assert re.search(r"^  stdin-oneshot +A one-shot load from stdin: pipe NDJSON in", listing,
                     re.M)
    for name in names:
        assert main(["example", name]) == 0
        assert capsys.readouterr().out == \
            (REPO / "config" / "examples" / f"{name}.toml").read_text()


@pytest.mark.parametrize("name", ["nope", "../demo"])
def test_an_unknown_example_is_one_line_and_exit_2(capsys, name: str) -> None:
    assert main(["example", name]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"streamer example: no example {name!r}; there are: ")
    assert captured.err.count("\n") == 1
