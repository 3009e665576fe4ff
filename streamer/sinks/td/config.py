"""Config model of the Treasure Data sink (`type = "td"`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from streamer.config.base import Model, SinkCommon
from streamer.config.urls import port_problem
from streamer.mapping.spec import ColumnSpec
from streamer.sinks.td.proxy import Proxy, proxy_for

TD_NAME_PATTERN = r"^[a-z0-9_]{3,255}$"
TD_REGIONS = ("us01", "eu01", "ap01", "ap02", "ap03")


class TdRetryConfig(Model):
    initial_backoff_ms: PositiveInt = 100
    max_backoff_ms: PositiveInt = 10_000
    # give up (dead-letter) after this long; 0 = retry until shutdown
    max_elapsed_s: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _order(self) -> TdRetryConfig:
        if self.max_backoff_ms < self.initial_backoff_ms:
            raise ValueError("max_backoff_ms must be >= initial_backoff_ms")
        return self


class TdSinkConfig(SinkCommon):
    type: Literal["td"]
    api: Literal["postback", "ingest"] = "postback"
    # "" = the api's default host; a region (us01, eu01, ...) or an http(s) URL
    endpoint: str = ""
    database: Annotated[str, Field(pattern=TD_NAME_PATTERN)]
    table: Annotated[str, Field(pattern=TD_NAME_PATTERN)]
    table_field: Annotated[str, Field(min_length=1)] | None = None
    write_key: SecretStr | None = None
    write_key_file: str | None = None
    _key_digest: str = PrivateAttr(default="")  # set by _key_and_auth
    auth: Literal["header", "query"] = "header"
    concurrency: Annotated[int, Field(ge=1, le=4096)] = 64
    timeout_s: PositiveFloat = 30.0
    retry: TdRetryConfig = TdRetryConfig()
    # shape records: the object of these columns (as the stage sink's `columns`)
    # is sent instead of the record's bytes; None: the bytes as they arrived
    mapping: Annotated[list[ColumnSpec], Field(min_length=1)] | None = None

    @field_validator("mapping")
    @classmethod
    def _mapping(cls, value: list[ColumnSpec] | None) -> list[ColumnSpec] | None:
        if value is None:
            return value
        names = [c.name for c in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate columns: {', '.join(dupes)}")
        for spec in value:
            # TD partitions by `time`: integer unix seconds
            if spec.name == "time" and not (
                    spec.type == "integer"
                    or (spec.type == "timestamp" and spec.format == "epoch_s")):
                raise ValueError('column time: Treasure Data needs unix seconds '
                                 '(type = "timestamp" with format = "epoch_s", or "integer")')
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value and value not in TD_REGIONS:
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.hostname \
                    or parsed.query or parsed.fragment:
                raise ValueError(f"must be a region ({', '.join(TD_REGIONS)}) or an "
                                 "http(s)://host[:port] URL")
            if parsed.username is not None:  # `check` prints the endpoint: not echoed
                raise ValueError("must be an http(s)://host[:port] URL with no "
                                 "user:password@ (TD takes the write key only)")
            if problem := port_problem(parsed):
                raise ValueError(f"must be an http(s)://host[:port] URL ({problem})")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _key_and_auth(self) -> TdSinkConfig:
        if (self.write_key is None) == (self.write_key_file is None):
            raise ValueError("set exactly one of write_key or write_key_file")
        try:
            key = self.secret_key()
        except OSError as exc:
            raise ValueError(f"write_key_file: cannot read {self.write_key_file} "
                             f"({exc.strerror})") from None
        # a digest of the key, never the key: a config whose key file holds another key
        # compares unequal, so a reload (SIGHUP) rebuilds the sink with the new key
        self._key_digest = hashlib.sha256(key.encode()).hexdigest()
        source = "write_key" if self.write_key is not None else "write_key_file"
        if not key:
            raise ValueError(f"{source} is empty")
        if not key.isascii() or not key.isprintable() or " " in key:
            # the message never quotes the key
            raise ValueError(f"{source} must be printable ASCII without spaces")
        if self.auth == "query" and (self.api == "ingest" or self.endpoint in TD_REGIONS):
            raise ValueError('auth = "query" works only with the postback API on its '
                             "classic host; use auth = \"header\"")
        self.proxy()  # a proxy variable that cannot be used is a config error
        return self

    def proxy(self) -> Proxy | None:
        """The forward proxy of the endpoint, from HTTPS_PROXY / HTTP_PROXY / NO_PROXY."""
        base = urlparse(self.base_url)
        return proxy_for(base.scheme, base.hostname or "")

    @property
    def base_url(self) -> str:
        if self.endpoint in TD_REGIONS:
            return f"https://{self.endpoint}.records.in.treasuredata.com"
        if self.endpoint:
            return self.endpoint
        return ("https://in.treasuredata.com" if self.api == "postback"
                else "https://us01.records.in.treasuredata.com")

    def secret_key(self) -> str:
        """The write key; never log or print it."""
        if self.write_key is not None:
            return self.write_key.get_secret_value().strip()
        return Path(self.write_key_file or "").read_text().strip()
