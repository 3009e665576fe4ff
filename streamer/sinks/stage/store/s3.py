"""S3 stage store: <prefix><window>/part-NNNNN.csv[.gz|.zst] objects (or .ndjson,
.parquet: formats.py).

A file's bytes are encoded into an in-memory buffer.  A file that stays below
`part_bytes` goes up as one PutObject when it is closed; a bigger one becomes
a multipart upload whose parts (>= part_bytes each, the last one excepted) are
uploaded in the background while the sink writes on, at most
`upload_concurrency` uploads at a time for the whole sink (the writer waits
for a free slot: memory stays bounded).  How many of them are sent at once
follows S3 (`ConcurrencyLimit`, core/concurrency.py, with `upload_concurrency`
as its maximum and start): a 503 SlowDown or a timeout lowers it at once, and
it climbs back while S3 answers in time.  The SDK does not retry on its own
(every answer reaches the limit); every request is retried here until it
passes (store/retry.py).  A file counts as staged only once its object is
complete.

Multipart uploads of this instance left incomplete by a crash are aborted at
start; those still open at a forced stop are aborted then.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from streamer.aws.clients import AwsClients, CurrentClient, error_code, transient_errors
from streamer.aws.config import s3_location
from streamer.core.concurrency import ConcurrencyLimit
from streamer.observability.metrics import Metrics
from streamer.sinks.stage.config import StageSinkConfig
from streamer.sinks.stage.formats import compressor, content_type, suffix
from streamer.sinks.stage.journal import Window
from streamer.sinks.stage.metrics import upload_seconds
from streamer.sinks.stage.store.local import StagedFile
from streamer.sinks.stage.store.retry import FatalStageError, Retry
from streamer.sinks.stage.store.s3_errors import GONE_UPLOAD, answer_with

log = logging.getLogger("streamer.sink.stage")

COMPRESS_IN_THREAD = 256 * 1024  # compress bigger chunks off the event loop
CHECKSUM = "CRC32"
@dataclass
class S3File(StagedFile):
    key: str = ""
    raw: io.BytesIO = field(default_factory=io.BytesIO)  # CSV not yet taken
    taken: int = 0  # CSV bytes already taken out of `raw`
    compressor: Any = None  # gzip or zstd stream (formats.compressor), or None
    packed: bytearray = field(default_factory=bytearray)  # compressed, not yet shipped
    upload_id: str | None = None
    parts: list[asyncio.Task] = field(default_factory=list)
    stored: int = 0  # object bytes handed to S3

    def write(self, data: bytes) -> None:
        self.raw.write(data)
        self.size = self.taken + self.raw.tell()

    def take_raw(self, limit: int | None = None) -> bytes:
        if limit is None or self.raw.tell() <= limit:
            data = self.raw.getvalue()
            self.raw = io.BytesIO()
        else:  # one copy of the part, another of the (small) rest
            with self.raw.getbuffer() as view:
                data, rest = bytes(view[:limit]), bytes(view[limit:])
            self.raw = io.BytesIO()
            self.raw.write(rest)
        self.taken += len(data)
        return data

    def pending(self) -> int:
        return len(self.packed) if self.compressor is not None else self.raw.tell()

    def take(self, limit: int | None = None) -> bytes:
        """What is ready to ship (at most `limit` bytes)."""
        if self.compressor is not None:
            data = bytes(self.packed[:limit])
            del self.packed[:len(data)]
        else:
            data = self.take_raw(limit)
        self.stored += len(data)
        return data


class S3Store:
    background = True

    def __init__(self, cfg: StageSinkConfig, instance: str, retry: Retry, header: bytes,
                 clients: AwsClients, metrics: Metrics, sink: str) -> None:
        self._bucket, self._prefix = s3_location(cfg.url)
        self._instance = instance
        self._retry = retry
        retry.on_refused = self._renew_if_rotated
        self._header = header
        self._clients = clients
        self._opts = cfg.s3
        self._cfg = cfg
        self.suffix = suffix(cfg.format, cfg.compression)
        self._content_type = content_type(cfg.format, cfg.compression)
        self._sse: dict[str, str] = {}
        if cfg.s3.sse == "SSE_S3":
            self._sse = {"ServerSideEncryption": "AES256"}
        elif cfg.s3.sse == "SSE_KMS":
            self._sse = {"ServerSideEncryption": "aws:kms",
                         "SSEKMSKeyId": cfg.s3.sse_kms_key_id or ""}
        self._slots = asyncio.Semaphore(cfg.s3.upload_concurrency)  # uploads in memory
        self._limit = ConcurrencyLimit(cfg.s3.upload_concurrency,
                                       initial=cfg.s3.upload_concurrency)  # requests sent
        self._uploads: dict[str, str] = {}  # open multipart uploads: id -> key
        self._latency = upload_seconds(metrics)
        self._sink = sink
        self._s3: Any = None
        self._connected: asyncio.Task | None = None

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        # the AWS SDK takes ~0.3 s to load and set up: meanwhile the sink already
        # encodes into its first file (in memory); the first request waits for it
        self._connected = asyncio.create_task(self._connect(), name="s3-connect")

    def starting(self) -> asyncio.Task | None:
        return self._connected

    async def _connect(self) -> None:
        self._s3 = CurrentClient(await self._new_client())
        await self._retry.run("abort incomplete uploads", self._abort_leftovers)

    async def _new_client(self) -> Any:
        return await self._clients.client("s3", pool=self._opts.upload_concurrency + 4,
                                          attempts=1)

    async def _renew_if_rotated(self) -> None:
        """S3 refused the credentials: when the shared credentials file was rewritten
        since the clients read it (keys rotated), the next attempt reads it again."""
        if self._s3 is not None and await self._clients.renew_if_rotated():
            self._s3.client = await self._new_client()
            log.info("stage sink %s: the AWS shared credentials file changed since it was "
                     "read: the next attempt uses what it holds now", self._sink)

    async def _ready(self) -> None:
        """Before any request: the client exists, an earlier run's uploads are gone."""
        assert self._connected is not None, "start() first"
        await self._connected

    def _ours(self, key: str) -> bool:
        window = key[len(self._prefix):].split("/", 1)[0]
        return window.endswith(f"-{self._instance}")

    async def _abort_leftovers(self) -> None:
        pages = self._s3.get_paginator("list_multipart_uploads").paginate(
            Bucket=self._bucket, Prefix=self._prefix)
        async for page in pages:
            for upload in page.get("Uploads", []):
                if self._ours(upload["Key"]):
                    log.info("aborting incomplete upload of s3://%s/%s from an earlier run",
                             self._bucket, upload["Key"])
                    await self._abort(upload["Key"], upload["UploadId"])

    async def _abort(self, key: str, upload_id: str) -> None:
        try:
            await self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key,
                                                  UploadId=upload_id)
        except transient_errors() as exc:
            if error_code(exc) not in GONE_UPLOAD:
                raise

    async def close(self, abort: bool) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.cancel()  # stopped before the client was ready
        if self._connected is not None:
            await asyncio.gather(self._connected, return_exceptions=True)
        if abort and self._uploads and self._s3 is not None:
            uploads, self._uploads = dict(self._uploads), {}
            for key in uploads.values():
                log.info("aborting the unfinished upload of s3://%s/%s", self._bucket, key)
            aborts = [self._abort(key, upload_id) for upload_id, key in uploads.items()]
            # best effort within a few seconds: the next start aborts what is left
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*aborts, return_exceptions=True), 5)

    # -- files ---------------------------------------------------------------------
    async def list_window(self, window_id: str) -> list[tuple[str, int]]:
        start = f"{self._prefix}{window_id}/"
        await self._ready()

        async def listing() -> list[tuple[str, int]]:
            found = []
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=start)
            async for page in pages:
                found.extend((o["Key"][len(start):], int(o["Size"]))
                             for o in page.get("Contents", []))
            return sorted(found)

        return await self._retry.run(f"list s3://{self._bucket}/{start}", listing)

    async def delete(self, window_id: str, name: str) -> None:
        """A complete object that no completion record counts (exactly-once recovery)."""
        await self._ready()
        key = self.key(window_id, name)
        await self._retry.run(f"delete s3://{self._bucket}/{key}", partial(
            self._s3.delete_object, Bucket=self._bucket, Key=key))

    async def discard(self, file: StagedFile) -> None:
        """An open file that must not be completed (its stream was revoked)."""
        assert isinstance(file, S3File)
        if file.upload_id is not None:
            await asyncio.gather(*file.parts, return_exceptions=True)
            await self._retry.run(f"abort upload of {file.key}", self._abort, file.key,
                                  file.upload_id)
            self._uploads.pop(file.upload_id, None)

    async def put_small(self, path: str, body: bytes) -> None:
        await self._ready()
        key = self._prefix + path
        await self._retry.run(f"put {key}", answer_with("PutObject", partial(
            self._s3.put_object, Bucket=self._bucket, Key=key, Body=body,
            ContentType="application/json", **self._sse), "ETag"))

    async def get_small(self, path: str) -> bytes | None:
        await self._ready()
        key = self._prefix + path

        async def read() -> bytes | None:
            try:
                answer = await self._s3.get_object(Bucket=self._bucket, Key=key)
            except transient_errors() as exc:
                if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
            async with answer["Body"] as body:
                return await body.read()

        return await self._retry.run(f"get {key}", read)

    async def list_small(self, prefix: str) -> list[str]:
        await self._ready()
        start = self._prefix + prefix

        async def listing() -> list[str]:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=start)
            return [o["Key"][len(start):] async for page in pages
                    for o in page.get("Contents", [])]

        return await self._retry.run(f"list s3://{self._bucket}/{start}", listing)

    async def delete_small(self, path: str) -> None:
        await self._ready()
        key = self._prefix + path
        await self._retry.run(f"delete {key}", partial(
            self._s3.delete_object, Bucket=self._bucket, Key=key))

    def locations(self, window: Window) -> list[str]:
        return [f"s3://{self._bucket}/{self.key(window.id, name)}" for name in window.files]

    def key(self, window_id: str, name: str) -> str:
        return f"{self._prefix}{window_id}/{name}"

    async def open(self, window: Window, name: str) -> S3File:
        file = S3File(window, name, time.monotonic(), key=self.key(window.id, name))
        file.compressor = compressor(self._cfg.format, self._cfg.compression,
                                     self._cfg.gzip_level)
        if self._header:
            file.write(self._header)
        return file

    async def flushed(self, file: StagedFile) -> None:
        """After each batch: compress, and start a part once enough is buffered."""
        assert isinstance(file, S3File)
        if file.compressor is not None:
            await self._compress(file, file.take_raw())
        while file.pending() >= self._opts.part_bytes:  # parts of part_bytes each
            await self._ship(file, file.take(self._opts.part_bytes))

    async def _compress(self, file: S3File, data: bytes, final: bool = False) -> None:
        def work() -> bytes:
            out = file.compressor.compress(data)
            return out + file.compressor.flush() if final else out

        packed = await asyncio.to_thread(work) if len(data) > COMPRESS_IN_THREAD else work()
        file.packed += packed

    async def _ship(self, file: S3File, data: bytes) -> None:
        await self._ready()
        if file.upload_id is None:
            created = await self._retry.run(
                f"start upload of {file.key}", answer_with("CreateMultipartUpload", partial(
                    self._s3.create_multipart_upload, Bucket=self._bucket, Key=file.key,
                    ContentType=self._content_type, ChecksumAlgorithm=CHECKSUM, **self._sse),
                    "UploadId"))
            file.upload_id = created["UploadId"]
            self._uploads[file.upload_id] = file.key
        await self._acquire()
        number = len(file.parts) + 1
        file.parts.append(asyncio.create_task(self._upload_part(file, number, data),
                                              name=f"part:{file.key}:{number}"))

    async def _acquire(self) -> None:
        await self._slots.acquire()

    def _release(self) -> None:
        self._slots.release()

    async def _upload_part(self, file: S3File, number: int, data: bytes) -> dict[str, Any]:
        try:
            started = time.monotonic()
            done = await self._retry.run(
                f"upload part {number} of {file.key}", answer_with("UploadPart", partial(
                    self._s3.upload_part, Bucket=self._bucket, Key=file.key,
                    UploadId=file.upload_id, PartNumber=number, Body=data,
                    ChecksumAlgorithm=CHECKSUM), "ETag", f"Checksum{CHECKSUM}"),
                limit=self._limit)
            self._latency.labels(self._sink, "part").observe(time.monotonic() - started)
        finally:
            self._release()
        return {"ETag": done["ETag"], "PartNumber": number,
                f"Checksum{CHECKSUM}": done[f"Checksum{CHECKSUM}"]}

    async def complete(self, file: StagedFile) -> int:
        assert isinstance(file, S3File)
        started = time.monotonic()
        if file.compressor is not None:
            await self._compress(file, file.take_raw(), final=True)
        data = file.take()
        await self._ready()
        if file.upload_id is None:
            await self._acquire()
            try:
                await self._retry.run(f"put {file.key}", answer_with("PutObject", partial(
                    self._s3.put_object, Bucket=self._bucket, Key=file.key, Body=data,
                    ContentType=self._content_type, ChecksumAlgorithm=CHECKSUM, **self._sse),
                    "ETag"), limit=self._limit)
            finally:
                self._release()
            self._latency.labels(self._sink, "put").observe(time.monotonic() - started)
        else:
            if data:
                await self._ship(file, data)
            parts = await asyncio.gather(*file.parts)
            await self._complete_upload(file, parts)
        self._latency.labels(self._sink, "file").observe(time.monotonic() - started)
        return file.stored

    async def _complete_upload(self, file: S3File, parts: list[dict[str, Any]]) -> None:
        started = time.monotonic()
        try:
            await self._retry.run(f"complete upload of {file.key}", answer_with(
                "CompleteMultipartUpload", partial(
                    self._s3.complete_multipart_upload, Bucket=self._bucket, Key=file.key,
                    UploadId=file.upload_id, MultipartUpload={"Parts": parts}), "ETag"))
        except FatalStageError:
            # an earlier attempt may have completed it and only its answer was lost
            size = await self._retry.run(f"check {file.key}", self._object_size, file.key)
            if size != file.stored:
                raise
        self._uploads.pop(file.upload_id or "", None)
        self._latency.labels(self._sink, "complete").observe(time.monotonic() - started)

    async def _object_size(self, key: str) -> int | None:
        try:
            head = await self._s3.head_object(Bucket=self._bucket, Key=key)
        except transient_errors() as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    def gauges(self) -> dict[str, float]:
        return {"uploads_in_flight": self._limit.in_flight,
                "multipart_uploads_open": len(self._uploads),
                "upload_concurrency_limit": self._limit.limit}
