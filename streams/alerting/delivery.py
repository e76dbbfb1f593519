"""Webhook delivery of ``sla-alerts``: ``run_delivery`` (and ``fstreams alerts deliver``).

Every configured receiver gets every alert record that no silence mutes, with retries,
exponential backoff with jitter and a circuit breaker of its own (see ``receiver_pump``).
Nothing here touches the stream processing: delivery is a separate consumer, so a slow or
dead receiver can only delay pages, never the fold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from streams.alerting.config import AlertingConfig
from streams.alerting.metrics import MetricsServer
from streams.alerting.receiver_pump import ReceiverPump
from streams.alerting.receivers import Receiver, receivers_from_config
from streams.alerting.silence_cache import SilenceCache
from streams.alerting.silences import silences_topic
from streams.alerting.stats import COUNTERS, DeliveryStats
from streams.logs import log_context
from streams.schema_source import RegistrySchemaSource
from streams.serde import WireDecoder
from streams.settings import Settings
from streams.topics import TopicNames

log = logging.getLogger(__name__)


class NoReceivers(ValueError):
    def __str__(self) -> str:
        return ("no receivers configured: set FSTREAMS_ALERTING_ALERTMANAGER_URLS and/or "
                "FSTREAMS_ALERTING_PAGERDUTY_URLS (comma-separated), or pass --alertmanager-url "
                "/ --pagerduty-url")


async def run_delivery(settings: Settings, config: AlertingConfig, stop_event: asyncio.Event,
                       *, stats: DeliveryStats | None = None) -> DeliveryStats:
    """Deliver until ``stop_event`` is set; returns the counters (pass ``stats`` to watch
    them while it runs). Raises NoReceivers when nothing is configured."""
    receivers = receivers_from_config(config)
    if not receivers:
        raise NoReceivers
    stats = stats if stats is not None else DeliveryStats()
    for receiver in receivers:  # every receiver shows in the counters from the start
        stats.receiver(receiver.name)
    metrics = None
    if config.metrics_port is not None:
        metrics = MetricsServer(stats, config.metrics_host, config.metrics_port)
        await metrics.start()
    try:
        return await _deliver(receivers, settings, config, stop_event, stats)
    finally:
        if metrics is not None:
            await metrics.stop()


async def _deliver(receivers: list[Receiver], settings: Settings, config: AlertingConfig,
                   stop_event: asyncio.Event, stats: DeliveryStats) -> DeliveryStats:
    halt = asyncio.Event()  # ours: also set when a pump crashes, to stop the others
    topic = TopicNames.with_prefix(settings.topic_prefix).sla_alerts
    silences = SilenceCache(settings.bootstrap_servers, silences_topic(settings),
                            on_refresh=stats.silences_read)
    if not await _first_silences(silences, stop_event):
        return stats
    log.info("alert delivery starting", extra={
        "topic": topic, "receivers": ",".join(r.name for r in receivers),
        "silences": len(silences.silences)})
    async with aiohttp.ClientSession() as session:
        pumps = [_pump(r, settings, config, topic, session, silences, stats, halt)
                 for r in receivers]
        tasks = []
        for pump in pumps:
            with log_context(receiver=pump.receiver.name):
                tasks.append(asyncio.create_task(pump.run(), name=pump.receiver.name))
        helpers = [
            asyncio.create_task(_mirror(stop_event, halt)),
            asyncio.create_task(silences.keep_fresh(config.silences_refresh_s, halt)),
            asyncio.create_task(_log_stats(stats, config.stats_interval_s, halt)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            halt.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
    log.info("alert delivery stopped", extra={k: stats.total(k) for k in COUNTERS})
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return stats


def _pump(receiver: Receiver, settings: Settings, config: AlertingConfig, topic: str,
          session: aiohttp.ClientSession, silences: SilenceCache, stats: DeliveryStats,
          halt: asyncio.Event) -> ReceiverPump:
    source = RegistrySchemaSource.from_settings(settings)
    decoder = WireDecoder.for_record(source, "SlaAlert",
                                     registry_hint=f"the registry at {settings.registry_url}")
    group = f"{config.consumer_group(settings.app_id)}.{receiver.name}"
    return ReceiverPump(receiver, topic=topic, group_id=group,
                        bootstrap=settings.bootstrap_servers, config=config, session=session,
                        decoder=decoder, silences=silences, stats=stats.receiver(receiver.name),
                        halt=halt)


async def _first_silences(silences: SilenceCache, stop_event: asyncio.Event) -> bool:
    """Load silences before sending anything (else a muted alert would page); False if
    asked to stop meanwhile."""
    delay = 0.5
    while not stop_event.is_set():
        try:
            await silences.refresh()
            return True
        except Exception as exc:  # broker unreachable: nothing could be consumed either
            log.warning("cannot read silences; not delivering until they are loaded",
                        extra={"topic": silences.topic, "retry_in_s": delay,
                               "error": f"{type(exc).__name__}: {exc}"})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), delay)
        delay = min(delay * 2, 30.0)
    return False


async def _mirror(stop_event: asyncio.Event, halt: asyncio.Event) -> None:
    await stop_event.wait()
    halt.set()


async def _log_stats(stats: DeliveryStats, every_s: float, halt: asyncio.Event) -> None:
    while not halt.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(halt.wait(), every_s)
        if not halt.is_set():  # the final counters are logged on the way out
            log.info("alert delivery counters", extra={k: stats.total(k) for k in COUNTERS})
