"""AWS Data Exchange: a window's objects imported as assets of a revision.

Per window: CreateRevision (its comment names the window) unless a fixed
revision is configured; then IMPORT_ASSETS_FROM_S3 jobs of at most
`max_assets_per_job` keys each, run one after the other (CreateJob, StartJob,
poll GetJob to COMPLETED / ERROR / CANCELLED / TIMED_OUT); then UpdateRevision
Finalized when asked.  The revision id, each job id and each finished job are
journaled as soon as they are known, so a restart continues where it stopped.
Neither CreateRevision nor CreateJob takes an idempotency token: a crash
right after one of them can leave an empty revision or a never-started job
behind (logged on the next run); importing a key twice replaces its asset.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from streamer.aws.clients import AwsClients, error_code
from streamer.aws.config import DataExchangeLoad, s3_location
from streamer.loaders.base import (
    LoadTimedOut,
    PermanentLoadError,
    Progress,
    WaitClock,
    answered,
    poll_delays,
)
from streamer.observability.metrics import SinkStats
from streamer.runtime.faults import FaultPoint
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.journal import Window

log = logging.getLogger("streamer.loader.dataexchange")

FINAL = ("COMPLETED", "ERROR", "CANCELLED", "TIMED_OUT")
DATA_EXCHANGE = "Data Exchange"
# refused as the request is: retrying cannot help (a Conflict is a finalized or revoked
# revision, a ResourceNotFound a data set or revision that does not exist)
PERMANENT = ("ValidationException", "ServiceLimitExceededException",
             "AccessDeniedException", "ConflictException", "ResourceNotFoundException")
# ... but a ServiceLimitExceeded on this quota clears by itself once other jobs end:
# retried, unlike a size limit (assets per job, per revision)
CONCURRENT_JOBS = "Concurrent in progress jobs"


class JobGone(Exception):
    """Data Exchange no longer knows a journaled job (ResourceNotFoundException)."""


async def _get_job(client: Any, job_id: str) -> dict[str, Any]:
    try:
        job = await client.get_job(JobId=job_id)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise JobGone(job_id) from exc
        raise
    answered(job, "State", "GetJob", DATA_EXCHANGE)
    return job


class DataExchangeLoader:
    def __init__(self, cfg: DataExchangeLoad, stage: StageSinkConfig, clients: AwsClients,
                 stats: SinkStats, sink: str) -> None:
        self._cfg = cfg
        self._clients = clients
        self._stats = stats
        self._sink = sink
        self._faults = FaultPoint.from_env()
        self._clock = WaitClock(cfg.max_wait_s)
        self._bucket, self._prefix = s3_location(stage.url)

    def keys(self, window: Window) -> list[str]:
        return [f"{self._prefix}{window.id}/{name}" for name in window.files]

    async def load(self, window: Window, files: list[str], progress: Progress) -> dict[str, Any]:
        self._clock.start(window.id)
        try:
            result = await self._load(window, progress)
        except PermanentLoadError:
            self._clock.stop(window.id)
            raise
        self._clock.stop(window.id)
        return result

    async def _load(self, window: Window, progress: Progress) -> dict[str, Any]:
        client = await self._clients.bounded_client(
            "dataexchange", region=self._cfg.region, endpoint_url=self._cfg.endpoint_url)
        keys = self.keys(window)
        revision_id = await self._revision(client, window, progress)
        size = self._cfg.max_assets_per_job
        chunks = [keys[i:i + size] for i in range(0, len(keys), size)]
        jobs: dict[str, str] = dict(window.info.get("jobs") or {})
        done: list[int] = list(window.info.get("jobs_done") or [])
        failures: list[str] = []
        for index, chunk in enumerate(chunks):
            if index in done:
                continue
            job_id = jobs.get(str(index))
            while True:
                if job_id is None:
                    job_id = await self._create_job(client, revision_id, chunk)
                    self._faults.hit("load.created")
                    jobs[str(index)] = job_id
                    progress(jobs=dict(jobs))
                try:
                    state, errors = await self._run_job(client, window, job_id, progress)
                    break
                except JobGone:
                    # expired or removed: its keys are imported by a new job (importing
                    # a key again replaces its asset); retrying the old id cannot end
                    log.warning("window %s of sink %s: import job %s no longer exists; "
                                "creating a new job for its %d keys", window.id,
                                self._sink, job_id, len(chunk))
                    job_id = None
            self._stats.count(f"load_jobs_{state.lower()}")
            if state == "COMPLETED":
                self._stats.count("load_assets_imported", len(chunk))
                done.append(index)
                progress(jobs_done=list(done))
            else:
                failures.append(f"job {job_id} ({len(chunk)} keys) ended {state}: "
                                + "; ".join(errors[:3]))
        if failures:
            raise PermanentLoadError(f"revision {revision_id}: " + " | ".join(failures))
        if self._cfg.finalize and not window.info.get("finalized"):
            await self._finalize(client, revision_id)
            progress(finalized=True)
        return {"rows": window.records, "assets": len(keys), "jobs": len(chunks),
                "revision_id": revision_id}

    async def _revision(self, client: Any, window: Window, progress: Progress) -> str:
        if self._cfg.revision_id:
            return self._cfg.revision_id
        revision_id = window.info.get("revision_id")
        if revision_id:
            return revision_id
        comment = (f"streamer sink {self._sink}, window {window.id}: {len(window.files)} "
                   f"files under s3://{self._bucket}/{self._prefix}{window.id}/")
        try:
            created = await client.create_revision(DataSetId=self._cfg.data_set_id,
                                                   Comment=comment)
        except Exception as exc:
            self._permanent(exc, "CreateRevision")
            raise
        revision_id = answered(created, "Id", "CreateRevision", DATA_EXCHANGE)
        progress(revision_id=revision_id)
        log.info("window %s of sink %s: revision %s of data set %s", window.id, self._sink,
                 revision_id, self._cfg.data_set_id)
        return revision_id

    @staticmethod
    def _permanent(exc: Exception, operation: str) -> None:
        limit = str((getattr(exc, "response", None) or {}).get("LimitName", ""))
        if error_code(exc) in PERMANENT and not limit.startswith(CONCURRENT_JOBS):
            raise PermanentLoadError(f"{operation} refused: {exc}") from exc

    async def _create_job(self, client: Any, revision_id: str, keys: list[str]) -> str:
        details = {"ImportAssetsFromS3": {
            "AssetSources": [{"Bucket": self._bucket, "Key": key} for key in keys],
            "DataSetId": self._cfg.data_set_id, "RevisionId": revision_id}}
        try:
            job = await client.create_job(Type="IMPORT_ASSETS_FROM_S3", Details=details)
        except Exception as exc:
            self._permanent(exc, "CreateJob")
            raise
        self._stats.count("load_jobs_created")
        return answered(job, "Id", "CreateJob", DATA_EXCHANGE)

    async def _run_job(self, client: Any, window: Window, job_id: str,
                       progress: Progress) -> tuple[str, list[str]]:
        delays = poll_delays(self._cfg.poll_initial_s, self._cfg.poll_max_s)
        job = await _get_job(client, job_id)
        if job["State"] == "WAITING":
            try:
                await client.start_job(JobId=job_id)
            except Exception as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    raise JobGone(job_id) from exc
                if error_code(exc) != "ConflictException":  # started already
                    raise
        while job["State"] not in FINAL:
            if self._clock.over(window.id):
                self._stats.count("load_jobs_timed_out")
                progress(timed_out=True)  # `loads retry` follows this job again
                raise LoadTimedOut(f"import job {job_id} still {job['State']} after "
                                   f"max_wait_s = {self._clock.max_wait_s:g}s; no longer "
                                   "waited for")
            await asyncio.sleep(next(delays))
            job = await _get_job(client, job_id)
        errors = [self._error_text(e) for e in job.get("Errors") or []]
        for text in errors:
            log.error("window %s of sink %s: import job %s: %s", window.id, self._sink,
                      job_id, text)
        if job["State"] != "COMPLETED":
            log.error("window %s of sink %s: import job %s ended %s", window.id, self._sink,
                      job_id, job["State"])
        return job["State"], errors

    @staticmethod
    def _error_text(error: dict[str, Any]) -> str:
        sources = (error.get("Details") or {}).get("ImportAssetsFromS3JobErrorDetails") or []
        keys = ", ".join(f"s3://{s.get('Bucket')}/{s.get('Key')}" for s in sources)
        text = f"{error.get('Code')}: {error.get('Message')}"
        if error.get("LimitName"):
            text += f" (limit {error['LimitName']} = {error.get('LimitValue')})"
        return f"{text} [{keys}]" if keys else text

    async def _finalized(self, client: Any, revision_id: str) -> bool:
        revision = await client.get_revision(DataSetId=self._cfg.data_set_id,
                                             RevisionId=revision_id)
        return bool(revision.get("Finalized"))

    async def _finalize(self, client: Any, revision_id: str) -> None:
        try:
            await client.update_revision(DataSetId=self._cfg.data_set_id,
                                         RevisionId=revision_id, Finalized=True)
        except Exception as exc:
            if error_code(exc) == "ConflictException" and await self._finalized(
                    client, revision_id):
                return  # finalized already (by a run that died before journaling it)
            self._permanent(exc, "UpdateRevision")
            raise
        log.info("revision %s of data set %s finalized", revision_id, self._cfg.data_set_id)
