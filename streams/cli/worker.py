"""`fstreams worker`: run the stream-processing worker (all agents, tables, query API)."""

from __future__ import annotations

import typer

from streams.settings import Settings


def worker_command(
    bootstrap: str | None = typer.Option(
        None, "--bootstrap", "-b", help="Kafka bootstrap servers [env FSTREAMS_BOOTSTRAP_SERVERS]"
    ),
    worker_id: str | None = typer.Option(None, "--worker-id", help="name of this worker"),
    web_port: int | None = typer.Option(None, "--web-port", help="query API / console port"),
    log_level: str | None = typer.Option(None, "--loglevel", "-l", help="DEBUG|INFO|WARNING"),
    topic_prefix: str | None = typer.Option(None, "--topic-prefix", help="prefix of all topics"),
) -> None:
    """Start a worker: joins the four input streams per order and emits derived streams.

    It keeps the order tables (RocksDB + Kafka changelog) and serves the query API. Ctrl-C or
    SIGTERM stops it cleanly: offsets committed, tables flushed.
    """
    from streams.runtime import run_worker

    overrides = {k: v for k, v in {
        "bootstrap_servers": bootstrap, "worker_id": worker_id, "web_port": web_port,
        "log_level": log_level.upper() if log_level else None, "topic_prefix": topic_prefix,
    }.items() if v is not None}
    run_worker(Settings(**overrides))
