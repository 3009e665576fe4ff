"""`check --connect` probes of the sources: what a source needs before it can read."""

from __future__ import annotations

import asyncio
import glob
import os
import re
import stat
from pathlib import Path

from streamer.config.connect import Probe
from streamer.sources.config import SourceConfig
from streamer.sources.file.config import FileSourceConfig
from streamer.sources.file.globbing import expand_all
from streamer.sources.kafka.config import KafkaSourceConfig
from streamer.sources.socket.config import SocketSourceConfig


def source_probe(src: SourceConfig) -> Probe:
    if isinstance(src, FileSourceConfig):
        return lambda: asyncio.to_thread(file_paths_readable, src)
    if isinstance(src, SocketSourceConfig):
        return lambda: socket_bindable(src)
    if isinstance(src, KafkaSourceConfig):
        return lambda: kafka_topics_exist(src)
    return _nothing_to_try


async def _nothing_to_try() -> tuple[bool, str]:
    return True, "nothing to try"


def file_paths_readable(src: FileSourceConfig) -> tuple[bool, str]:
    """Every file the patterns match opens for reading.  A followed pattern that
    matches nothing yet is fine when its directory can be listed (files may come
    later); a one-shot source with nothing to read is not."""
    problems: list[str] = []
    count = 0
    for pattern, matched in expand_all(src.paths, src.exclude):
        if not matched:
            directory = _fixed_directory(pattern)
            if not src.follow:
                problems.append(f"{pattern}: no file matches")
            elif not os.access(directory, os.R_OK | os.X_OK):
                problems.append(f"{pattern}: directory {directory} cannot be listed")
        for path in matched:
            try:
                if _opens_as_regular_file(path):
                    count += 1
            except OSError as exc:
                problems.append(f"{path}: {exc.strerror or type(exc).__name__}")
    if problems:
        return False, "; ".join(problems)
    return True, f"{count} file(s) readable" + ("" if count or not src.follow
                                                  else ", waiting for matches")


def _opens_as_regular_file(path: str) -> bool:
    """Whether `path` is a regular file (what `run` reads; directories, FIFOs and
    sockets it skips) that opens for reading.  Opened non-blocking: a FIFO's open
    would wait for a writer for ever, and a thread cannot be timed out."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        return False
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _fixed_directory(pattern: str) -> Path:
    """The deepest directory of a glob pattern without wildcards."""
    parts = Path(pattern).parts
    fixed = [part for part in parts[:next((i for i, part in enumerate(parts)
                                           if glob.has_magic(part)), len(parts) - 1)]]
    return Path(*fixed) if fixed else Path(".")


async def socket_bindable(src: SocketSourceConfig) -> tuple[bool, str]:
    host, _, port = src.listen.rpartition(":")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, host.strip("[]"), int(port),
                                      reuse_address=True, start_serving=False)
    server.close()
    await server.wait_closed()
    return True, f"{src.listen} can be bound"


async def kafka_topics_exist(src: KafkaSourceConfig) -> tuple[bool, str]:
    from aiokafka import AIOKafkaClient
    from aiokafka.errors import KafkaConnectionError

    from streamer.sources.kafka.config import connection_options
    from streamer.sources.kafka.diagnose import bootstrap_failure

    client = AIOKafkaClient(client_id=src.client_id or "streamer-check",
                            request_timeout_ms=10_000, **connection_options(src))
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
    except KafkaConnectionError as exc:
        return False, f"cannot reach {await bootstrap_failure(src) or exc}"
    finally:
        await client.close()
    existing = metadata.topics()
    if src.topics:
        missing = sorted(set(src.topics) - existing)
        if missing:
            return False, f"topic(s) missing: {', '.join(missing)}"
        return True, f"topic(s) {', '.join(src.topics)} exist"
    pattern = re.compile(src.topic_pattern or "")  # as the consumer subscribes
    matching = sorted(t for t in existing if pattern.match(t))
    if not matching:
        return True, f"no topic matches {src.topic_pattern} yet"
    return True, f"{len(matching)} topic(s) match {src.topic_pattern}"
