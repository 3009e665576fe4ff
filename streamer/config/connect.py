"""`streamer check --connect`: every source and destination tried once, one line each.

Each probe is a coroutine answering (ok, detail) that writes nothing that stays:
the TD key is tried on a request that cannot write a record, the S3 stage gets a
probe object put and deleted, the loaders' targets are described, Kafka answers
its metadata, a socket address is bound and released, file paths are opened.
The lines go through the secret masker: a server that echoes a key shows `***`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from streamer.config.root import Config
from streamer.config.secrets import secret_values
from streamer.observability.masking import SecretMasker

Probe = Callable[[], Awaitable[tuple[bool, str]]]
PROBE_TIMEOUT_S = 20.0  # per probe; every probe runs at the same time


def _probes(cfg: Config) -> list[tuple[str, Probe]]:
    # imported here: each probe module brings the clients of its kind
    from streamer.sinks.stage.config import StageSinkConfig
    from streamer.sinks.td.config import TdSinkConfig
    from streamer.sources.connect import source_probe

    probes: list[tuple[str, Probe]] = []
    for name, src in cfg.sources.items():
        probes.append((f"source {name} ({src.type})", source_probe(src)))
    for name, sink in cfg.sinks.items():
        if isinstance(sink, TdSinkConfig):
            from streamer.sinks.td.check import td_probe

            probes.append((f"sink {name} (td {sink.api})", td_probe(sink)))
        elif isinstance(sink, StageSinkConfig):
            from streamer.sinks.stage.connect import stage_probes

            probes.extend((f"sink {name} ({what})", probe)
                          for what, probe in stage_probes(sink, cfg.data_path))
    return probes


async def _outcome(probe: Probe) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            return await probe()
    except TimeoutError:
        return False, f"no answer within {PROBE_TIMEOUT_S:g}s"
    except Exception as exc:  # any failure is this probe's line, not a traceback
        text = str(exc).splitlines()[0] if str(exc) else ""
        return False, f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def connect_report(cfg: Config) -> tuple[list[str], bool]:
    """The `connect:` lines (`ok ...` or `FAILED: why`) and whether all are ok."""
    probes = _probes(cfg)
    outcomes = await asyncio.gather(*(_outcome(probe) for _, probe in probes))
    masker = SecretMasker(secret_values(cfg))
    lines = ["connect:"]
    for (label, _), (ok, detail) in zip(probes, outcomes, strict=True):
        text = ("ok" + (f" -- {detail}" if detail else "")) if ok else f"FAILED: {detail}"
        lines.append(masker.mask(f"  {label}: {text}"))
    return lines, all(ok for ok, _ in outcomes)
