"""Effective settings: defaults < TOML file < environment (FSTREAMS_*) < explicit CLI flags.

The TOML file is `fstreams.toml` in the working directory, or the path in FSTREAMS_CONFIG.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


def _config_file() -> Path:
    return Path(os.environ.get("FSTREAMS_CONFIG", "fstreams.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FSTREAMS_", extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    registry_url: str = Field("http://127.0.0.1:8081", description="schema registry URL")
    registry_password: SecretStr | None = Field(None, description="registry basic-auth password")
    registry_user: str | None = None
    data_dir: Path = Field(PROJECT_ROOT / ".data", description="tables, broker data, pid files")
    app_id: str = Field("fulfillment-streams", description="Faust app id = consumer group")
    worker_id: str = Field("worker-1", description="names this worker in logs and dead letters")
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, description="query API / console port")
    web_advertised_url: str | None = Field(
        None, description="where other workers reach this one's web server (table routing); "
                          "default http://<web_host>:<web_port>, with this host's name when "
                          "web_host is a wildcard (0.0.0.0, ::)")
    partitions: int = Field(4, description="partitions of every input and derived topic")
    replication_factor: int = 1
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    # The worker's event loop: uvloop (less CPU per callback) or Python's own asyncio loop.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    topic_prefix: str = Field("", description="prefix for every topic name (tests, tenants)")
    allowed_lateness_ms: int = Field(5 * 60_000, description="stream time = max event time - this")
    closed_order_retention_ms: int = Field(
        90 * 86_400_000, description="closed orders leave the table this long after their last "
        "event (chargebacks arrive weeks late)")
    batch_max_events: int = Field(500, description="events per batch on the live path")
    batch_timeout_s: float = Field(0.05, description="max wait to fill a batch")
    timer_step: int = Field(
        25, ge=1, description="due timers evaluated per partition at a time; input arriving "
        "meanwhile waits for one step, not for all that are due (a jump of stream time can "
        "make thousands due at once)")
    projection_resolved_retention_ms: int = Field(
        24 * 3_600_000, description="resolved alerts and mismatches stay queryable "
        "(GET /alerts, /mismatches) this long in stream time after they resolved")
    projection_max_resolved: int = Field(
        10_000, description="at most this many resolved alerts (and as many resolved "
        "mismatches) are kept for queries, oldest dropped first")
    rocksdb_block_cache_mb: int = Field(
        32, ge=1, description="one LRU block cache shared by every table partition's RocksDB "
        "in the worker (index and filter blocks included)")
    rocksdb_memtables_mb: int = Field(
        32, ge=1, description="memtables of all the worker's RocksDB databases together; "
        "past it the largest is flushed")
    rocksdb_write_buffer_mb: int = Field(8, ge=1, description="one memtable of one database")
    rocksdb_max_write_buffers: int = Field(2, ge=2, description="memtables per database "
                                           "(one filling while one flushes)")
    malloc_arenas: int = Field(2, ge=0, description="glibc malloc arenas shared by the "
                               "worker's threads (0: glibc's default, up to 8 per core)")
    consumer_fetch_wait_ms: int = Field(
        100, ge=1, description="longest the broker holds a fetch of the worker's inputs "
        "open waiting for data (Faust's own is 1,500 ms: a record on a busy partition could "
        "wait that long behind a fetch of quiet ones; see streams/fetch_wait.py)")
    gc_young_threshold: int = Field(
        50_000, ge=0, description="net container allocations between two collections of "
        "Python's youngest GC generation (0: Python's default of 700, which costs the "
        "worker ~17% more CPU per event; see streams/gc_tuning.py)")
    group_static_membership: bool = Field(
        True, description="join the consumer group under the worker id (group.instance.id): "
        "a worker restarted after a crash takes its partitions back without waiting out its "
        "old session; worker ids must then be unique")
    restore_bulk_min_records: int = Field(
        1_000, ge=0, description="a table partition this many changelog records behind is "
        "restored in bulk (large reads, one RocksDB write per batch) before Faust's "
        "record-by-record recovery; 0 turns bulk restore off")
    replay_jobs: int = Field(
        0, ge=0, description="processes `fstreams replay` splits the partitions over (0: one "
        "per CPU, at most one per partition, and one for replays under 50,000 events)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml, file_secret_settings)

    @property
    def web_url(self) -> str:
        """This worker's web server as other workers and the console reach it. Faust forwards
        an order's query to its owner's URL, so a wildcard listen address cannot stand in."""
        if self.web_advertised_url:
            return self.web_advertised_url.rstrip("/")
        host = socket.gethostname() if self.web_host in _WILDCARD_HOSTS else self.web_host
        return f"http://{host}:{self.web_port}"

    def masked(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked, for `fstreams config show`."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr) or (value is not None and "password" in name):
                out[name] = "********"
            else:
                out[name] = str(value) if isinstance(value, Path) else value
        return out


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
