"""SIGHUP: read the config file again and apply what changed to the running pipeline.

`plan_reload` compares the running config with the new one component by
component; `Pipeline.apply` rebuilds only what changed (see README "Reloading
the config").  `Reloader` runs one reload at a time: a SIGHUP that arrives
during a reload is remembered and served once it has finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamer.config.root import Config, ConfigError, load_config
from streamer.config.secrets import secret_values
from streamer.observability.logs import console_handler

if TYPE_CHECKING:
    from streamer.pipeline.graph import Pipeline

log = logging.getLogger("streamer.reload")

# read once at start: the running value is kept, a warning says a restart is needed
RESTART_ONLY = ("data_dir", "instance_id", "api", "workers")


@dataclass(frozen=True)
class Changes:
    """Names of one kind of component, by what a reload does to them."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]

    @classmethod
    def between(cls, old: dict[str, Any], new: dict[str, Any]) -> Changes:
        return cls(added=tuple(n for n in new if n not in old),
                   removed=tuple(n for n in old if n not in new),
                   changed=tuple(n for n in new if n in old and old[n] != new[n]),
                   unchanged=tuple(n for n in new if n in old and old[n] == new[n]))

    @property
    def stopping(self) -> tuple[str, ...]:
        """Running components that stop (removed, or replaced by a new version)."""
        return self.removed + self.changed

    @property
    def starting(self) -> tuple[str, ...]:
        return self.added + self.changed

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def describe(self, kind: str) -> list[str]:
        return [f"{what} {kind} {', '.join(names)}"
                for what, names in (("rebuilt", self.changed), ("added", self.added),
                                    ("removed", self.removed)) if names]


@dataclass(frozen=True)
class Plan:
    config: Config  # the new config, with the restart-only keys kept as they run
    sources: Changes
    sinks: Changes
    needs_restart: tuple[str, ...]  # restart-only keys that differ (their old value kept)
    settings: tuple[str, ...]  # top-level keys applied in place

    @property
    def empty(self) -> bool:
        return not (self.sources.any or self.sinks.any or self.settings)

    def describe(self) -> str:
        parts = self.sinks.describe("sinks") + self.sources.describe("sources")
        parts += [f"{key} = {getattr(self.config, key)}" for key in self.settings]
        kept = [f"{kind} {', '.join(names)}" for kind, names in
                (("sinks", self.sinks.unchanged), ("sources", self.sources.unchanged)) if names]
        if kept:
            parts.append(f"unchanged and still running: {'; '.join(kept)}")
        return "; ".join(parts)


def _stdin_sources(cfg: Config) -> dict[str, Any]:
    return {n: s for n, s in cfg.sources.items() if s.type == "stdin"}


def plan_reload(old: Config, new: Config) -> Plan:
    """What a reload from `old` to `new` does; ConfigError when it cannot be applied."""
    if _stdin_sources(old) != _stdin_sources(new):
        raise ConfigError(["sources: a stdin source cannot be added, changed or removed by a "
                           "reload (stdin is read once); restart streamer to change it"])
    needs_restart = tuple(k for k in RESTART_ONLY
                          if k in Config.model_fields and getattr(old, k) != getattr(new, k))
    config = new.model_copy(update={k: getattr(old, k) for k in needs_restart})
    settings = tuple(k for k in ("shutdown_timeout_s", "checkpoint_interval_s")
                     if getattr(old, k) != getattr(new, k))
    return Plan(config, Changes.between(old.sources, config.sources),
                Changes.between(old.sinks, config.sinks), needs_restart, settings)


class Reloader:
    def __init__(self, path: str | Path, pipeline: Pipeline,
                 prepare: Callable[[Config], Config] | None = None) -> None:
        """`prepare` turns the file's config into the one this process runs (a
        worker's shard of it), as was done at start."""
        self._path = path
        self._pipeline = pipeline
        self._prepare = prepare
        self._task: asyncio.Task | None = None
        self._again = False

    def request(self) -> None:
        """A SIGHUP: reload now, or after the reload in progress."""
        if self._task is not None and not self._task.done():
            self._again = True
            log.info("SIGHUP received during a reload: reloading again once it is done")
            return
        log.info("SIGHUP received: reading %s again", self._path)
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="reload")

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _serve(self) -> None:
        while True:
            self._again = False
            try:
                await self.reload()
            except Exception:
                log.exception("reload of %s failed", self._path)
            if not self._again:
                return
            log.info("reloading again (a SIGHUP came during the last reload): reading %s",
                     self._path)

    async def reload(self) -> None:
        pipeline = self._pipeline
        if not pipeline.running:
            log.info("SIGHUP ignored: the pipeline is not running (starting or stopping)")
            return
        try:
            new = load_config(self._path)
            if (console := console_handler()) is not None:
                console.add_secrets(secret_values(new))  # new keys are masked in logs too
            if self._prepare is not None:
                new = self._prepare(new)
            plan = plan_reload(pipeline.config, new)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload: %s", problem)
            log.error("reload refused (%d problem%s): the running config stays in force",
                      len(exc.problems), "" if len(exc.problems) == 1 else "s")
            return
        for key in plan.needs_restart:
            log.warning("reload: %s changed; it takes effect only after a restart (the "
                        "running value is kept)", key)
        if plan.empty:
            log.info("reload: no source or sink changed; everything keeps running")
            return
        log.info("reload: %s", plan.describe())
        await pipeline.apply(plan)
        if pipeline.running:
            log.info("reload done: replaced components drained, new ones started")
