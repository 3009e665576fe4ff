"""The class that runs each config `type` of source and sink.

Classes are named "module:Class" and imported when a config uses them:
aiokafka, aiohttp and DuckDB take a tenth of a second and tens of MiB each, in
every worker.
"""

from __future__ import annotations

import importlib

from streamer.pipeline.contracts import Sink, Source

SOURCES = {"file": "streamer.sources.file.source:FileSource",
           "stdin": "streamer.sources.stdin.source:StdinSource",
           "socket": "streamer.sources.socket.source:SocketSource",
           "kafka": "streamer.sources.kafka.source:KafkaSource"}
SINKS = {"stage": "streamer.sinks.stage.sink:StageSink", "td": "streamer.sinks.td.sink:TdSink"}


def _load(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def source_class(kind: str) -> type[Source]:
    return _load(SOURCES[kind])


def sink_class(kind: str) -> type[Sink]:
    return _load(SINKS[kind])
