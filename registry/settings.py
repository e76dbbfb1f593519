"""Registry configuration, read from ``FSTREAMS_REGISTRY_*`` environment variables."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "FSTREAMS_REGISTRY_"


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    topic: str = Field("_schemas", description="compacted topic that stores the registry")
    host: str = Field("127.0.0.1", description="interface to listen on")
    port: int = Field(8081, ge=0, le=65535, description="HTTP port to listen on")
    group_id: str | None = Field(
        None, description="consumer group for the writer election (default: derived from topic)"
    )
    advertised_url: str | None = Field(
        None, description="URL other instances use to forward writes here (default: http://HOST:PORT)"
    )
    auth_file: Path | None = Field(
        None, description="JSON users file; when set, HTTP basic auth is required"
    )
    leader_eligible: bool = Field(True, description="whether this instance may become the writer")
    replication_factor: int | None = Field(
        None, ge=1, description="replication factor of a new topic (default: min(3, brokers))"
    )
    write_timeout: float = Field(10.0, gt=0, description="seconds for a write to be read back")
    forward_timeout: float = Field(15.0, gt=0, description="seconds to wait for the elected writer")
    startup_timeout: float = Field(60.0, gt=0, description="seconds to replay the topic at start")
    log_level: str = Field("INFO", description="logging level")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.upper()

    @property
    def effective_group_id(self) -> str:
        return self.group_id or f"fstreams-registry.{self.topic}"

    @property
    def effective_advertised_url(self) -> str:
        if self.advertised_url:
            return self.advertised_url.rstrip("/")
        # Bound to every interface: the host name is the address peers are most likely to reach.
        host = socket.gethostname() if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"
