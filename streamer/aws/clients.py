"""aiobotocore clients for one sink: region, endpoint and credentials made explicit.

`endpoint_url` is passed to every client that has one configured (a client
with an explicit endpoint never runs Timestream endpoint discovery; one set
through AWS_ENDPOINT_URL_* would).  Credentials come from the standard AWS
chain unless the config gives them; they are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import cache, partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamer.aws.config import S3Options, shared_files_digest


@cache
def transient_errors() -> tuple[type[BaseException], ...]:
    """Errors worth retrying at our level (botocore has already retried a few
    times).  A function: aiohttp is imported with the SDK, not before."""
    import aiohttp

    return (BotoCoreError, ClientError, aiohttp.ClientError, OSError, asyncio.TimeoutError)


def _new_session() -> Any:
    # importing aiobotocore (and aiohttp) takes ~0.2 s of a one-shot run: callers
    # run this in a thread while the pipeline already reads and encodes
    from aiobotocore.session import get_session

    return get_session()


def error_code(exc: BaseException) -> str:
    """The service's error code ("NoSuchUpload", "ValidationException", ...) or ""."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_reason(exc: BaseException) -> str:
    """One line for logs and /health (botocore messages carry no credentials)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class AwsClients:
    """Creates clients on first use and closes them all together."""

    def __init__(self, options: S3Options) -> None:
        self._options = options
        self._session: Any = None  # created by the first client()
        self._files_digest = ""  # the shared credentials files when it was created
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[tuple[str, str | None, str | None, int], Any] = {}
        self._lock = asyncio.Lock()

    def _credentials(self) -> dict[str, str]:
        opts = self._options
        if opts.access_key_id is None or opts.secret_access_key is None:
            return {}
        creds = {"aws_access_key_id": opts.access_key_id.get_secret_value(),
                 "aws_secret_access_key": opts.secret_access_key.get_secret_value()}
        if opts.session_token is not None:
            creds["aws_session_token"] = opts.session_token.get_secret_value()
        return creds

    async def client(self, service: str, *, region: str | None = None,
                     endpoint_url: str | None = None, pool: int = 10,
                     attempts: int = 3) -> Any:
        """`service`'s client; S3 uses the sink's s3 options, other services
        their own region/endpoint (region defaulting to the S3 one).  `attempts`
        per request by the SDK itself (1: every answer reaches the caller)."""
        opts = self._options
        if service == "s3":
            region, endpoint_url = opts.region, opts.endpoint_url
        else:
            region = region or opts.region
        key = (service, region, endpoint_url, attempts)
        async with self._lock:
            if self._session is None:
                self._files_digest = await asyncio.to_thread(shared_files_digest, opts)
                self._session = await asyncio.to_thread(_new_session)
            if key not in self._clients:
                from aiobotocore.config import AioConfig  # loaded with the session

                extra: dict[str, Any] = {}
                if service == "s3":
                    extra["s3"] = {"addressing_style":
                                   "path" if opts.force_path_style else "auto"}
                config = AioConfig(
                    connect_timeout=opts.connect_timeout_s, read_timeout=opts.read_timeout_s,
                    retries={"mode": "standard", "total_max_attempts": attempts},
                    max_pool_connections=pool, **extra)
                kwargs: dict[str, Any] = {"config": config, **self._credentials()}
                if region:
                    kwargs["region_name"] = region
                if endpoint_url:
                    kwargs["endpoint_url"] = endpoint_url
                self._clients[key] = await self._stack.enter_async_context(
                    self._session.create_client(service, **kwargs))
            return self._clients[key]

    async def bounded_client(self, service: str, *, region: str | None = None,
                             endpoint_url: str | None = None) -> BoundedClient:
        """`service`'s client, each call bounded by `s3.request_timeout_s` (the loaders')."""
        client = await self.client(service, region=region, endpoint_url=endpoint_url)
        return BoundedClient(client, self._options.request_timeout_s, "s3.request_timeout_s")

    async def renew_if_rotated(self) -> bool:
        """After a refusal: when the shared credentials or config file changed since
        the clients were made (keys rotated in the file), close them all; the next
        client() reads the files again.  True when it did."""
        if self._session is None:
            return False
        digest = await asyncio.to_thread(shared_files_digest, self._options)
        if not digest or digest == self._files_digest:
            return False
        async with self._lock:
            self._clients.clear()
            self._session = None
            stack, self._stack = self._stack, contextlib.AsyncExitStack()
            await stack.aclose()
        return True

    async def close(self) -> None:
        self._clients.clear()
        await self._stack.aclose()


class BoundedClient:
    """A service client each of whose calls has `timeout_s` for its whole answer: the
    SDK's read timeout is per read, so an answer that trickles in (a byte now and then:
    a slowloris proxy, a congested link) would hold the call for as long as it lasts."""

    def __init__(self, client: Any, timeout_s: float, setting: str) -> None:
        self._client, self.timeout_s, self.setting = client, timeout_s, setting

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)

        async def bounded(*args: Any, **kwargs: Any) -> Any:
            try:
                return await asyncio.wait_for(call(*args, **kwargs), self.timeout_s)
            except TimeoutError:
                raise TimeoutError(f"{name}: no whole answer within {self.setting} = "
                                   f"{self.timeout_s:g}s") from None
        return bounded


class CurrentClient:
    """The S3 client in use, looked up at each call: when clients are renewed (keys
    rotated in the credentials file), the attempts that follow use the new one."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return partial(_call_current, self, name)


def _call_current(current: CurrentClient, name: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(current.client, name)(*args, **kwargs)
