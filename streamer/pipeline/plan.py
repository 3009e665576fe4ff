"""What a config reload changes: each source and sink compared with its running version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamer.config.base import ConfigError
from streamer.config.root import Config

# read once at start: the running value is kept, a warning says a restart is needed
RESTART_ONLY = ("data_dir", "instance_id", "api", "workers")


def restart_note(key: str) -> str:
    """The reload's warning for a restart-only key that changed."""
    note = f"{key} changed; it takes effect only after a restart (the running value is kept)"
    if key == "workers":  # supervisor/shards.py: a data_dir keeps its number of workers
        note += ("; a data_dir keeps the number of workers it was first run with, so a "
                 "restart with the new value is refused: let this run finish, then start "
                 "it with a new data_dir")
    return note


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

    def summary(self, kind: str) -> list[str]:
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

    def summary(self) -> str:
        parts = self.sinks.summary("sinks") + self.sources.summary("sources")
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
    sources = Changes.between(old.sources, config.sources)
    sinks = Changes.between(old.sinks, config.sinks)
    return Plan(config, sources, _drain_exactly_once(old, sources, sinks), needs_restart,
                settings)


def _drain_exactly_once(old: Config, sources: Changes, sinks: Changes) -> Changes:
    """A source that stops saves only what was acknowledged, and its new version reads
    the rest again; an exactly-once stage sink it feeds would stage that twice (its
    fences are its journal's at start).  So such a sink is rebuilt too: it drains first,
    and the checkpoint saved then covers everything the old source read."""
    stopping = set(sources.stopping)
    drained = tuple(name for name in sinks.unchanged
                    if getattr(old.sinks[name], "exactly_once", False)
                    and stopping & set(old.sink_inputs(name)))
    if not drained:
        return sinks
    return Changes(added=sinks.added, removed=sinks.removed,
                   changed=sinks.changed + drained,
                   unchanged=tuple(n for n in sinks.unchanged if n not in drained))
