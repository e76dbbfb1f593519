"""The Faust application: transport, store, topics and tuning, built from Settings.

`create_app` is a factory rather than a module-level singleton so tests and benchmarks can run
isolated apps (own topic prefix, own data dir) in one process; agents attach via `register`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust

from streams import bulk_restore, malloc_arenas, rocks_options, static_membership
from streams.lean_monitor import LeanMonitor
from streams.rocks_store import STORE_URL
from streams.settings import Settings
from streams.topics import TopicNames
from streams.web.errors import json_errors


@dataclass
class Pipeline:
    """What agents need: the app, its settings and topic names, and shared services."""

    app: faust.App
    settings: Settings
    names: TopicNames
    services: dict[str, Any] = field(default_factory=dict)

    def topic(self, *names: str, **kwargs: Any) -> faust.TopicT:
        """A raw-bytes Faust topic (one or several names) with the product's partition count."""
        return self.app.topic(
            *names,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=self.settings.partitions,
            **kwargs,
        )


    def bytes_table(self, name: str, **kwargs: Any) -> faust.TableT:
        """A table of bytes -> bytes (the agent encodes state), co-partitioned with the inputs."""
        return self.app.Table(name, key_type=bytes, value_type=bytes,
                              partitions=self.settings.partitions, **kwargs)


def worker_dir(settings: Settings) -> Path:
    return settings.data_dir / "workers" / settings.worker_id


def create_app(settings: Settings, **overrides: Any) -> Pipeline:
    names = TopicNames.with_prefix(settings.topic_prefix)
    worker_dir(settings).parent.mkdir(parents=True, exist_ok=True)
    # Before Faust's, RocksDB's and librdkafka's threads exist (streams/malloc_arenas.py).
    malloc_arenas.limit(settings.malloc_arenas)
    conf: dict[str, Any] = {
        "broker": f"kafka://{settings.bootstrap_servers}",
        # Each worker's clients carry its id at the broker (logs, metrics, quotas): this one
        # reads the inputs and changelogs; "-outputs" and "-restore" are the others.
        "broker_client_id": f"{settings.worker_id}-faust",
        # Faust's RocksDB store on one memory budget for the process (streams/rocks_options.py).
        "store": STORE_URL,
        "datadir": str(worker_dir(settings)),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "topic_allow_declare": True,
        # Exactly-once is ours (streams/exactly_once.py): Faust's transactions would not cover
        # the librdkafka producer that writes the outputs and the changelogs.
        "processing_guarantee": "at_least_once",
        "consumer_auto_offset_reset": "earliest",
        # Changelog and Faust-side producer: batch for throughput (measured on the hot path).
        "producer_linger": 0.02,
        "producer_max_batch_size": 256 * 1024,
        "producer_acks": -1,
        "stream_buffer_maxsize": 8192,
        "broker_commit_interval": 1.0,
        "table_standby_replicas": 1,
        # Recovery restores far-behind partitions in bulk first (streams/bulk_restore.py).
        "TableManager": bulk_restore.BulkTableManager,
        "web_enabled": True,
        "web_host": settings.web_host,
        "web_port": settings.web_port,
        "web_in_thread": False,
        # Table routing forwards a request to the owner's canonical URL: make it reachable.
        "canonical_url": settings.web_url,
        "web_application_options": {"middlewares": [json_errors]},
        "table_cleanup_interval": 30.0,
        "autodiscover": False,
        "logging_config": None,
        "Monitor": LeanMonitor,  # no per-event stats bookkeeping (see streams/lean_monitor.py)
    }
    if settings.group_static_membership:
        # A restart under the same worker id skips the wait for the old session to expire
        # (Faust's 60 s default); a clean stop still leaves at once (streams/static_membership).
        static_membership.install()
        conf["consumer_group_instance_id"] = static_membership.instance_id(
            settings.app_id, settings.worker_id)
        conf["PartitionAssignor"] = static_membership.StaticMemberAssignor
    conf.update(overrides)
    app = faust.App(settings.app_id, **conf)
    rocks_options.attach(app, rocks_options.RocksTuning.from_settings(settings))
    min_records = settings.restore_bulk_min_records
    if settings.processing_guarantee == "exactly_once":
        # Every changelog ends with a commit marker, which Faust's own recovery waits out (two
        # idle 5 s polls) however little is left to read: the bulk restore steps over it.
        min_records = min(min_records, 1)
    bulk_restore.attach(app, bulk_restore.RestoreConfig(
        settings.bootstrap_servers, min_records=min_records,
        client_id=f"{settings.worker_id}-restore"))
    return Pipeline(app=app, settings=settings, names=names)
