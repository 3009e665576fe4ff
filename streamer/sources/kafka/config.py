"""Config model of the Kafka source (`type = "kafka"`)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
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

from streamer.config.base import Model
from streamer.config.file_digest import files_digest
from streamer.config.urls import port_problem


class KafkaSourceConfig(Model):
    type: Literal["kafka"]
    bootstrap_servers: Annotated[list[str], Field(min_length=1)]
    topics: list[str] = []
    topic_pattern: str | None = None
    group_id: Annotated[str, Field(min_length=1)]
    start_from: Literal["earliest", "latest"] = "earliest"
    # read_committed: records of aborted transactions (data that never existed) and of
    # transactions still open are not read, as librdkafka's consumers read by default
    isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed"
    client_id: str = ""  # default: streamer-<instance_id>
    max_line_bytes: PositiveInt = 1024 * 1024
    # records taken per `getmany`: enough for a whole fetch, so that aiokafka sends
    # the next fetch request while this one is decoded
    max_poll_records: PositiveInt = 100_000
    fetch_max_wait_ms: PositiveInt = 500
    max_partition_fetch_bytes: PositiveInt = 1024 * 1024
    # per partition: fetched batches not yet acknowledged by every sink.  A stage
    # sink acknowledges a file's records when the file closes, so this must cover
    # the fetches of one stage file or fetching stalls until it closes
    max_in_flight_batches: PositiveInt = 1000
    # a new group's join waits on the broker (tansu: half this); 6 s is the least a
    # Kafka broker accepts by default (group.min.session.timeout.ms)
    session_timeout_ms: PositiveInt = 6_000
    heartbeat_interval_ms: PositiveInt = 1_000
    rebalance_timeout_ms: PositiveInt = 30_000
    max_poll_interval_ms: PositiveInt = 300_000
    commit_timeout_s: PositiveFloat = 10.0
    # how often the cluster's metadata is read again: a topic matching topic_pattern
    # or a partition added is seen within this (aiokafka's own default is 5 minutes)
    metadata_max_age_ms: PositiveInt = 30_000
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None
    _ssl_files_digest: str = PrivateAttr(default="")  # client certificates renewed in place
    ssl_check_hostname: bool = True

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _servers(cls, value: Any) -> Any:
        if isinstance(value, str):  # "host1:9092,host2:9092"
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _ports(cls, value: list[str]) -> list[str]:
        for server in value:  # HOST[:PORT]: a port no socket can have is a typo
            if problem := port_problem(urlparse(f"//{server}")):
                raise ValueError(f"{server}: {problem}")
        return value

    @field_validator("topic_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSourceConfig:
        if bool(self.topics) == bool(self.topic_pattern):
            raise ValueError("set exactly one of topics or topic_pattern")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be below session_timeout_ms")
        if self.security_protocol.startswith("SASL") and not (
                self.sasl_plain_username and self.sasl_plain_password):
            raise ValueError(f"security_protocol {self.security_protocol} needs "
                             "sasl_plain_username and sasl_plain_password")
        ssl_set = [k for k in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password")
                   if getattr(self, k) is not None]
        if ssl_set and not self.security_protocol.endswith("SSL"):
            raise ValueError(f"{', '.join(ssl_set)} need security_protocol SSL or SASL_SSL")
        if ssl_set:  # renewed in place: a reload rebuilds the source with them
            self._ssl_files_digest = files_digest(
                (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile))
        return self


def connection_options(cfg: KafkaSourceConfig) -> dict[str, Any]:
    """aiokafka's options for reaching the brokers (bootstrap servers, SASL, TLS),
    shared by the consumer and `check --connect`."""
    from aiokafka.helpers import create_ssl_context

    options: dict[str, Any] = {"bootstrap_servers": cfg.bootstrap_servers,
                               "security_protocol": cfg.security_protocol}
    if cfg.security_protocol.startswith("SASL"):
        assert cfg.sasl_plain_password is not None  # the model checked it
        options["sasl_mechanism"] = cfg.sasl_mechanism
        options["sasl_plain_username"] = cfg.sasl_plain_username
        options["sasl_plain_password"] = cfg.sasl_plain_password.get_secret_value()
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        password = cfg.ssl_password.get_secret_value() if cfg.ssl_password else None
        context = create_ssl_context(cafile=cfg.ssl_cafile, certfile=cfg.ssl_certfile,
                                     keyfile=cfg.ssl_keyfile, password=password)
        context.check_hostname = cfg.ssl_check_hostname
        options["ssl_context"] = context
    return options
