"""SIGHUP: read the config file again and apply what changed to the running pipeline.

`plan_reload` (plan.py) says what changed; `Pipeline.apply` rebuilds only that
(docs/operations.md, "Signals").  One reload at a time: a SIGHUP during a reload
is served once it is done; one while the pipeline starts (held since the process's
first line, runtime/signals.py) once it runs: the file may have been edited after
it was read.  Only one while the pipeline stops is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from streamer.config.base import ConfigError
from streamer.config.root import Config, load_config
from streamer.config.secrets import secret_values
from streamer.observability.logs import console_handler
from streamer.pipeline.graph import Pipeline
from streamer.pipeline.plan import plan_reload, restart_note

log = logging.getLogger("streamer.reload")


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
        self.requests = 0  # SIGHUPs seen

    def request(self) -> None:
        """A SIGHUP: reload now, or after the reload in progress."""
        self.requests += 1
        starting = not self._pipeline.started.is_set()
        if self._task is not None and not self._task.done():
            if starting:  # one reload already waits for the start: it reads the file then
                log.info("SIGHUP received while the pipeline starts: %s is read again once "
                         "it runs", self._path)
                return
            self._again = True
            log.info("SIGHUP received during a reload: reloading again once it is done")
            return
        if starting:
            log.info("SIGHUP received while the pipeline starts: %s is read again once it "
                     "runs", self._path)
        else:
            log.info("SIGHUP received: reading %s again", self._path)
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="reload")

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _serve(self) -> None:
        if not self._pipeline.started.is_set():
            await self._pipeline.started.wait()  # cancelled by close() if it never starts
            log.info("the pipeline runs: reading %s again (a SIGHUP came while it started)",
                     self._path)
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
            log.info("SIGHUP ignored: the pipeline is stopping")
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
            log.warning("reload: %s", restart_note(key))
        if plan.empty:
            log.info("reload: no source or sink changed; everything keeps running")
            return
        log.info("reload: %s", plan.summary())
        await pipeline.apply(plan)
        if pipeline.running:
            log.info("reload done: replaced components drained, new ones started")
