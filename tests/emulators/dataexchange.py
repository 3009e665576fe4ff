"""AWS Data Exchange revision and IMPORT_ASSETS_FROM_S3 job operations.

Job life: CreateJob -> WAITING; StartJob -> IN_PROGRESS -(delay)-> COMPLETED, or ERROR
when a source object is missing (one Errors[] entry per missing object, nothing
imported: the import is all-or-nothing). Emulator choices where the docs are silent:
CreateJob on a finalized revision -> ConflictException; more AssetSources than
`max_assets_per_job` -> ServiceLimitExceededException (402, LimitName "Assets per
import job from Amazon S3"); finalizing a revision without assets -> ValidationException;
re-importing a key already in the revision replaces that asset (names stay unique);
CreateJob while `max_active_jobs` jobs are IN_PROGRESS -> ServiceLimitExceededException
(LimitName "Concurrent in progress jobs to import assets from Amazon S3", one of the
exception's limit names in the service model; a job's own errors cannot name it).
For tests of that refusal, `hold_jobs_until_refused` keeps every started job
IN_PROGRESS until a CreateJob was refused on that quota (then `job_delay` as usual):
the refusal happens however long the client takes to ask.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .batchload_common import ACCOUNT_ID, ApiError, S3Access, iso_now, new_hex_id, page

Spawn = Callable[[Coroutine[Any, Any, None]], None]


@dataclass
class DataExchangeConfig:
    job_delay: float = 0.2
    max_assets_per_job: int = 100
    max_assets_per_revision: int = 10000
    max_active_jobs: int | None = None
    hold_jobs_until_refused: bool = False


@dataclass
class Revision:
    data: dict[str, Any]
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)  # by asset name
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # by asset name


@dataclass
class Job:
    data: dict[str, Any]
    sources: list[dict[str, str]]
    revision_id: str
    data_set_id: str


class DataExchangeService:
    def __init__(self, s3: S3Access, config: DataExchangeConfig, spawn: Spawn,
                 region: str) -> None:
        self.s3, self.config, self.spawn, self.region = s3, config, spawn, region
        self.data_sets: dict[str, dict[str, Any]] = {}
        self.revisions: dict[str, Revision] = {}
        self.jobs: dict[str, Job] = {}
        self.quota_refusals = 0  # CreateJob refused on the concurrent jobs quota

    def _arn(self, resource: str) -> str:
        return f"arn:aws:dataexchange:{self.region}:{ACCOUNT_ID}:{resource}"

    # ---- control API -------------------------------------------------------------
    def register_data_set(self, data_set_id: str | None, name: str | None) -> str:
        ds_id = data_set_id or new_hex_id()
        self.data_sets[ds_id] = {"Id": ds_id, "Name": name or f"data-set-{ds_id[:8]}",
                                 "Arn": self._arn(f"data-sets/{ds_id}"),
                                 "AssetType": "S3_SNAPSHOT", "Origin": "OWNED"}
        return ds_id

    def control_revisions(self, data_set_id: str) -> list[dict[str, Any]] | None:
        if data_set_id not in self.data_sets:
            return None
        return [{**r.data, "AssetCount": len(r.assets)} for r in self.revisions.values()
                if r.data["DataSetId"] == data_set_id]

    def control_assets(self, data_set_id: str, revision_id: str) -> list[dict[str, Any]] | None:
        rev = self.revisions.get(revision_id)
        if rev is None or rev.data["DataSetId"] != data_set_id:
            return None
        return [{**a, "Source": rev.sources[name]} for name, a in rev.assets.items()]

    def control_jobs(self) -> list[dict[str, Any]]:
        return [dict(j.data) for j in self.jobs.values()]

    # ---- service operations ------------------------------------------------------
    async def call(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = {"CreateRevision": self.create_revision, "GetRevision": self.get_revision,
                   "UpdateRevision": self.update_revision,
                   "ListRevisionAssets": self.list_revision_assets,
                   "CreateJob": self.create_job, "StartJob": self.start_job,
                   "GetJob": self.get_job, "CancelJob": self.cancel_job,
                   "GetDataSet": self.get_data_set}[op]
        return handler(params)

    def _data_set(self, ds_id: str) -> dict[str, Any]:
        if ds_id not in self.data_sets:
            raise ApiError("ResourceNotFoundException", f"Data set {ds_id} not found",
                           ResourceId=ds_id, ResourceType="DATA_SET")
        return self.data_sets[ds_id]

    def get_data_set(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(self._data_set(params["DataSetId"]))

    def _revision(self, ds_id: str, rev_id: str) -> Revision:
        self._data_set(ds_id)
        rev = self.revisions.get(rev_id)
        if rev is None or rev.data["DataSetId"] != ds_id:
            raise ApiError("ResourceNotFoundException", f"Revision {rev_id} not found",
                           ResourceId=rev_id, ResourceType="REVISION")
        return rev

    def _job(self, job_id: str) -> Job:
        if job_id not in self.jobs:
            raise ApiError("ResourceNotFoundException", f"Job {job_id} not found",
                           ResourceId=job_id, ResourceType="JOB")
        return self.jobs[job_id]

    def create_revision(self, params: dict[str, Any]) -> dict[str, Any]:
        ds_id = params["DataSetId"]
        self._data_set(ds_id)
        rev_id, now = new_hex_id(), iso_now()
        data: dict[str, Any] = {
            "Arn": self._arn(f"data-sets/{ds_id}/revisions/{rev_id}"), "CreatedAt": now,
            "DataSetId": ds_id, "Finalized": False, "Id": rev_id, "Revoked": False,
            "UpdatedAt": now}
        if "Comment" in params:
            data["Comment"] = params["Comment"]
        if params.get("Tags"):
            data["Tags"] = params["Tags"]
        self.revisions[rev_id] = Revision(data)
        return dict(data)

    def get_revision(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(self._revision(params["DataSetId"], params["RevisionId"]).data)

    def update_revision(self, params: dict[str, Any]) -> dict[str, Any]:
        rev = self._revision(params["DataSetId"], params["RevisionId"])
        finalize = params.get("Finalized")
        if finalize and not rev.data["Finalized"]:
            if not rev.assets:
                raise ApiError("ValidationException",
                               "A revision must contain at least one asset to be finalized")
            busy = [j for j in self.jobs.values() if j.revision_id == rev.data["Id"]
                    and j.data["State"] == "IN_PROGRESS"]
            if busy:
                raise ApiError("ConflictException", "The revision has jobs in progress",
                               ResourceId=rev.data["Id"], ResourceType="REVISION")
        if finalize is not None:
            rev.data["Finalized"] = bool(finalize)
        if "Comment" in params:
            rev.data["Comment"] = params["Comment"]
        rev.data["UpdatedAt"] = iso_now()
        out = dict(rev.data)
        out.pop("Tags", None)
        return out

    def list_revision_assets(self, params: dict[str, Any]) -> dict[str, Any]:
        assets = list(self._revision(params["DataSetId"], params["RevisionId"]).assets.values())
        return page(assets, params, "Assets", 200, "Invalid nextToken")

    def create_job(self, params: dict[str, Any]) -> dict[str, Any]:
        if params["Type"] != "IMPORT_ASSETS_FROM_S3":
            raise ApiError("ValidationException", f"Job type {params['Type']} is not supported "
                           "by this emulator (only IMPORT_ASSETS_FROM_S3)")
        details = params["Details"].get("ImportAssetsFromS3")
        if details is None or len(params["Details"]) != 1:
            raise ApiError("ValidationException", "Details must contain exactly "
                           "ImportAssetsFromS3 for an IMPORT_ASSETS_FROM_S3 job")
        sources = details["AssetSources"]
        if not sources:
            raise ApiError("ValidationException", "AssetSources must not be empty")
        limit = self.config.max_assets_per_job
        if len(sources) > limit:
            raise ApiError("ServiceLimitExceededException",
                           f"An import job can have at most {limit} assets",
                           LimitName="Assets per import job from Amazon S3",
                           LimitValue=float(limit))
        active = self.config.max_active_jobs
        if active is not None and sum(j.data["State"] == "IN_PROGRESS"
                                      for j in self.jobs.values()) >= active:
            self.quota_refusals += 1
            raise ApiError("ServiceLimitExceededException",
                           f"At most {active} import jobs can be in progress",
                           LimitName="Concurrent in progress jobs to import assets from "
                           "Amazon S3", LimitValue=float(active))
        ds_id, rev_id = details["DataSetId"], details["RevisionId"]
        rev = self._revision(ds_id, rev_id)
        if rev.data["Finalized"]:
            raise ApiError("ConflictException", f"Revision {rev_id} is finalized; no assets "
                           "can be added to it", ResourceId=rev_id, ResourceType="REVISION")
        job_id, now = new_hex_id(), iso_now()
        data = {"Arn": self._arn(f"jobs/{job_id}"), "CreatedAt": now,
                "Details": {"ImportAssetsFromS3": {"AssetSources": sources,
                                                   "DataSetId": ds_id, "RevisionId": rev_id}},
                "Errors": [], "Id": job_id, "State": "WAITING", "Type": params["Type"],
                "UpdatedAt": now}
        self.jobs[job_id] = Job(data, sources, rev_id, ds_id)
        return dict(data)

    def start_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._job(params["JobId"])
        if job.data["State"] != "WAITING":
            raise ApiError("ConflictException", f"Job {job.data['Id']} is "
                           f"{job.data['State']}; only a WAITING job can be started",
                           ResourceId=job.data["Id"], ResourceType="JOB")
        self._set(job, "IN_PROGRESS")
        self.spawn(self._run(job))
        return {}

    def get_job(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(self._job(params["JobId"]).data)

    def cancel_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._job(params["JobId"])
        if job.data["State"] != "WAITING":
            raise ApiError("ConflictException", f"Job {job.data['Id']} is {job.data['State']}"
                           "; only a WAITING job can be cancelled",
                           ResourceId=job.data["Id"], ResourceType="JOB")
        self._set(job, "CANCELLED")
        return {}

    @staticmethod
    def _set(job: Job, state: str) -> None:
        job.data["State"], job.data["UpdatedAt"] = state, iso_now()

    async def _run(self, job: Job) -> None:
        while self.config.hold_jobs_until_refused and not self.quota_refusals:
            await asyncio.sleep(0.02)
        await asyncio.sleep(self.config.job_delay)
        if self.jobs.get(job.data["Id"]) is not job:
            return  # forgotten meanwhile (control API): it never finishes
        rev = self.revisions[job.revision_id]
        errors: list[dict[str, Any]] = []
        found: list[tuple[dict[str, str], dict[str, Any]]] = []
        for src in job.sources:
            try:
                head = await asyncio.to_thread(self.s3.head, src["Bucket"], src["Key"])
            except Exception as exc:
                errors.append(self._error("INTERNAL_SERVER_EXCEPTION",
                                          f"Could not read s3://{src['Bucket']}/{src['Key']}: "
                                          f"{exc}", src))
                continue
            if head is None:
                errors.append(self._error("RESOURCE_NOT_FOUND_EXCEPTION",
                                          f"The S3 object s3://{src['Bucket']}/{src['Key']} "
                                          "does not exist", src))
            else:
                found.append((src, head))
        new_names = {src["Key"] for src, _ in found} - rev.assets.keys()
        limit = self.config.max_assets_per_revision
        if not errors and len(rev.assets) + len(new_names) > limit:
            errors.append({"Code": "SERVICE_QUOTA_EXCEEDED_EXCEPTION",
                           "Message": f"A revision can have at most {limit} assets",
                           "LimitName": "Assets per revision", "LimitValue": float(limit),
                           "ResourceId": job.revision_id, "ResourceType": "REVISION"})
        if rev.data["Finalized"] and not errors:
            errors.append({"Code": "VALIDATION_EXCEPTION",
                           "Message": f"Revision {job.revision_id} was finalized",
                           "ResourceId": job.revision_id, "ResourceType": "REVISION"})
        if errors:
            job.data["Errors"] = errors
            self._set(job, "ERROR")
            return
        for src, head in found:
            self._add_asset(rev, job, src, head)
        rev.data["UpdatedAt"] = iso_now()
        self._set(job, "COMPLETED")

    @staticmethod
    def _error(code: str, message: str, src: dict[str, str]) -> dict[str, Any]:
        return {"Code": code, "Message": message, "ResourceId": src["Key"],
                "ResourceType": "ASSET",
                "Details": {"ImportAssetsFromS3JobErrorDetails": [
                    {"Bucket": src["Bucket"], "Key": src["Key"]}]}}

    def _add_asset(self, rev: Revision, job: Job, src: dict[str, str],
                   head: dict[str, Any]) -> None:
        asset_id, now = new_hex_id(), iso_now()
        ds_id, rev_id = job.data_set_id, job.revision_id
        rev.sources[src["Key"]] = {"Bucket": src["Bucket"], "Key": src["Key"],
                                   "ETag": str(head.get("ETag", "")).strip('"'),
                                   "JobId": job.data["Id"]}
        rev.assets[src["Key"]] = {
            "Arn": self._arn(f"data-sets/{ds_id}/revisions/{rev_id}/assets/{asset_id}"),
            "AssetDetails": {"S3SnapshotAsset": {"Size": float(head["ContentLength"])}},
            "AssetType": "S3_SNAPSHOT", "CreatedAt": now, "DataSetId": ds_id,
            "Id": asset_id, "Name": src["Key"], "RevisionId": rev_id, "UpdatedAt": now}
