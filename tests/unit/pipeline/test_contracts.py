"""Every registered source and sink class implements its contract: each method the
pipeline calls exists, with the contract's parameters, sync or async alike."""

from __future__ import annotations

import inspect

import pytest

from streamer.pipeline.contracts import Sink, Source
from streamer.pipeline.registry import SINKS, SOURCES, sink_class, source_class


def members(protocol: type) -> dict[str, object]:
    """The methods a contract declares (its constructor included), as declared."""
    return {name: value for name, value in vars(protocol).items()
            if (name == "__init__" or not name.startswith("_"))
            and (callable(value) or isinstance(value, classmethod))}


def parameters(function: object) -> list[tuple[str, inspect._ParameterKind, object]]:
    return [(p.name, p.kind, p.default)
            for p in inspect.signature(function).parameters.values()]  # type: ignore[arg-type]


def assert_implements(cls: type, protocol: type) -> None:
    assert members(protocol), protocol
    for name, declared in members(protocol).items():
        found = inspect.getattr_static(cls, name, None)
        assert found is not None and found is not getattr(object, name, None), (cls, name)
        if isinstance(declared, classmethod):
            assert isinstance(found, classmethod), f"{cls.__name__}.{name}: not a classmethod"
            declared, found = declared.__func__, found.__func__
        assert not isinstance(found, classmethod | staticmethod | property), (cls, name)
        assert (inspect.iscoroutinefunction(found)
                == inspect.iscoroutinefunction(declared)), f"{cls.__name__}.{name}: async?"
        want, got = parameters(declared), parameters(found)
        if name == "__init__":  # a constructor may take more, with defaults (tests)
            extra = got[len(want):]
            got = got[:len(want)]
            assert all(default is not inspect.Parameter.empty for _, _, default in extra), (
                cls, extra)
        assert got == want, f"{cls.__name__}.{name}{inspect.signature(found)}"


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_every_source_implements_the_source_contract(kind):
    assert_implements(source_class(kind), Source)


@pytest.mark.parametrize("kind", sorted(SINKS))
def test_every_sink_implements_the_sink_contract(kind):
    assert_implements(sink_class(kind), Sink)


def test_the_contracts_name_what_the_pipeline_calls():
    assert set(members(Source)) == {"__init__", "run", "after_drain", "finish",
                                    "save_checkpoint", "close"}
    assert set(members(Sink)) == {"__init__", "takes_blocks", "run", "close"}


def test_a_class_missing_a_method_or_with_other_parameters_fails():
    class NoClose:
        def __init__(self, name, cfg, buffer, context):
            self.name = name

        @classmethod
        def takes_blocks(cls, cfg):
            return False

        async def run(self):
            pass

    with pytest.raises(AssertionError, match="close"):
        assert_implements(NoClose, Sink)

    class SyncRun(NoClose):
        def run(self):  # type: ignore[override]
            pass

        def close(self):
            pass

    with pytest.raises(AssertionError, match="async"):
        assert_implements(SyncRun, Sink)

    class OtherParameters(NoClose):
        def close(self, now):
            pass

    with pytest.raises(AssertionError, match="close"):
        assert_implements(OtherParameters, Sink)
