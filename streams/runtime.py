"""Assemble a full worker: app + topics + every agent, then run it until a signal stops it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from streams import fetch_wait, gc_tuning, logs, offset_guard
from streams.app import Pipeline, create_app
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics

log = logging.getLogger(__name__)


def build_pipeline(settings: Settings, **app_overrides: object) -> Pipeline:
    from agents import register_all
    from streams.services import build_services
    from streams.web import register_web

    pipeline = create_app(settings, **app_overrides)
    build_services(pipeline)
    register_all(pipeline)
    register_web(pipeline)
    offset_guard.install(pipeline.app)
    fetch_wait.install(pipeline.app, settings.consumer_fetch_wait_ms)
    return pipeline


def use_event_loop(name: str) -> None:
    """Install the worker's event loop before anything creates one. uvloop spends less CPU
    per callback than asyncio's loop, and a Faust worker runs many small ones per batch."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:  # not on this platform (pinned only where it builds)
            log.warning("uvloop is not installed; using asyncio's event loop")
            return
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_worker(settings: Settings) -> None:
    from streams.worker import Worker

    logs.configure(settings.log_level, settings.log_format)
    use_event_loop(settings.event_loop)
    names = TopicNames.with_prefix(settings.topic_prefix)
    created = ensure_topics(settings.bootstrap_servers, names, settings.partitions,
                            settings.replication_factor)
    if created:
        log.info("created topics", extra={"topics": ",".join(created)})
    pipeline = build_pipeline(settings)
    gc_tuning.set_young_threshold(settings.gc_young_threshold)
    log.info("worker starting", extra={"worker_id": settings.worker_id,
                                       "bootstrap": settings.bootstrap_servers,
                                       "guarantee": settings.processing_guarantee,
                                       "web": f"{settings.web_url}/"})
    exactly_once = settings.processing_guarantee == "exactly_once"
    table_dir = Path(pipeline.app.conf.tabledir)
    if exactly_once:
        from streams.exactly_once import trust_local_tables

        trust_local_tables(table_dir)
    clean = False
    try:
        Worker(pipeline.app, settings).execute_from_commandline()
    except SystemExit as exc:
        clean = exc.code in (0, None)
        raise
    finally:
        if exactly_once and clean:
            from streams.exactly_once import mark_clean_stop

            mark_clean_stop(table_dir, pipeline.services["sink"])

