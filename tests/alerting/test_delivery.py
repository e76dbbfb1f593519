"""Webhook delivery on the real broker and registry, to a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from streams.alerting.breaker import CLOSED
from streams.alerting.silences import create_silence, expire_silence, parse_matcher
from streams.procs import ChildProcess, fstreams
from streams.settings import Settings
from tests.alerting.conftest import DeliveryRun
from tests.alerting.support import (
    WebhookReceiver,
    alert,
    fails_first,
    produce_alerts,
    wait_until,
)

Deliver = Callable[..., DeliveryRun]


def _am_status(body: dict) -> tuple[str, str]:
    return body["alerts"][0]["fingerprint"], body["status"]


async def test_each_trigger_and_resolve_once_through_500s(
        alert_settings: Settings, webhook: WebhookReceiver, deliver: Deliver) -> None:
    webhook.respond = fails_first(3, status=500)
    records = [alert("o-1"), alert("o-2"), alert("o-1", "resolved"), alert("o-2", "resolved")]
    produce_alerts(alert_settings, records)
    run = deliver(alertmanager_urls=[f"{webhook.url}/hook"], breaker_failures=10)

    await wait_until(lambda: len(webhook.accepted()) >= 4, what="4 deliveries")
    await run.wait_caught_up()

    got = [_am_status(r.body) for r in webhook.accepted()]
    assert Counter(got) == Counter((r["fingerprint"], r["state"]) for r in records)
    for order in ("o-1", "o-2"):  # per alert, the resolve never overtakes its trigger
        fp = alert(order)["fingerprint"]
        assert [s for f, s in got if f == fp] == ["firing", "resolved"]
    body = webhook.accepted()[0].body
    assert body["version"] == "4" and body["receiver"] == "fulfillment-oncall"
    assert body["alerts"][0]["annotations"]["runbook_url"] == "runbooks/ship_by_breached.md"
    stats = run.stats.as_dict()
    assert stats["delivered"] == 4 and stats["failed"] == 0 and stats["retried"] >= 3
    assert len(webhook.requests) == 4 + 3


async def test_pagerduty_trigger_and_resolve_dedup_on_fingerprint(
        alert_settings: Settings, webhook: WebhookReceiver, deliver: Deliver) -> None:
    webhook.respond = fails_first(1, status=503)
    produce_alerts(alert_settings, [alert("o-7"), alert("o-7", "resolved")])
    run = deliver(pagerduty_urls=[f"{webhook.url}/v2/enqueue"],
                  pagerduty_routing_key="routing-key-1")

    await wait_until(lambda: len(webhook.accepted()) >= 2, what="trigger and resolve")
    await run.wait_caught_up()

    bodies = [r.body for r in webhook.accepted()]
    fp = alert("o-7")["fingerprint"]
    assert [(b["event_action"], b["dedup_key"]) for b in bodies] == [("trigger", fp),
                                                                      ("resolve", fp)]
    assert all(b["routing_key"] == "routing-key-1" for b in bodies)
    assert bodies[0]["payload"]["severity"] == "critical"
    assert {r.path for r in webhook.requests} == {"/v2/enqueue"}
    assert run.stats.as_dict()["delivered"] == 2


async def test_silenced_alert_is_counted_not_delivered(
        alert_settings: Settings, webhook: WebhookReceiver, deliver: Deliver) -> None:
    create_silence(alert_settings, [parse_matcher("warehouse=wms-east")], 3_600_000,
                   comment="wms-east maintenance")
    produce_alerts(alert_settings, [
        alert("o-east", warehouse="wms-east"),
        alert("o-west", warehouse="wms-west"),
        alert("o-east", "resolved", warehouse="wms-east"),
    ])
    run = deliver(alertmanager_urls=[webhook.url])

    await run.wait_caught_up()

    assert [_am_status(r.body) for r in webhook.requests] == [
        (alert("o-west")["fingerprint"], "firing")]
    stats = run.stats.as_dict()
    assert (stats["delivered"], stats["silenced"], stats["failed"]) == (1, 2, 0)


async def test_circuit_opens_after_consecutive_failures_and_recovers(
        alert_settings: Settings, webhook: WebhookReceiver, deliver: Deliver) -> None:
    webhook.respond = fails_first(4, status=503)
    produce_alerts(alert_settings, [alert("o-cb")])
    cooldown = 0.4
    run = deliver(alertmanager_urls=[webhook.url], breaker_failures=3,
                  breaker_cooldown_s=cooldown, backoff_initial_s=0.01, backoff_max_s=0.02)

    await wait_until(lambda: len(webhook.accepted()) == 1, what="delivery after recovery")
    await run.wait_caught_up()

    times = [r.at for r in webhook.requests]
    assert [r.status for r in webhook.requests] == [503, 503, 503, 503, 200]
    # Open after the 3rd failure: the probe waits out the cool-down; the failed probe
    # re-opens it, so the next attempt waits again. Before that, only short backoffs.
    assert times[3] - times[2] >= cooldown * 0.9
    assert times[4] - times[3] >= cooldown * 0.9
    assert times[2] - times[0] < cooldown
    receiver_stats = next(iter(run.stats.as_dict()["receivers"].values()))
    assert receiver_stats["breaker_opened"] == 2
    assert receiver_stats["breaker_state"] == CLOSED
    assert receiver_stats["delivered"] == 1 and receiver_stats["retried"] == 4


async def test_gives_up_at_max_age_then_moves_on(
        alert_settings: Settings, webhook: WebhookReceiver, deliver: Deliver) -> None:
    doomed, rejected, fine = (alert("o-9", rule="delivery_late"),
                              alert("o-9", rule="refund_overdue"), alert("o-9"))
    verdict = {doomed["fingerprint"]: 500, rejected["fingerprint"]: 400}
    webhook.respond = lambda body: verdict.get(body["alerts"][0]["fingerprint"], 200)
    produce_alerts(alert_settings, [doomed, rejected, fine])  # one key: one partition, in order
    run = deliver(alertmanager_urls=[webhook.url], give_up_after_s=0.6, breaker_failures=100)

    await run.wait_caught_up()

    statuses = [r.status for r in webhook.requests]
    assert statuses[-2:] == [400, 200] and set(statuses[:-2]) == {500}
    assert len(statuses) >= 4  # the doomed one was retried before giving up
    stats = run.stats.as_dict()
    assert (stats["failed"], stats["delivered"]) == (2, 1)


async def test_deliver_command_stops_cleanly_on_sigterm(
        alert_settings: Settings, webhook: WebhookReceiver, tmp_path: Path) -> None:
    produce_alerts(alert_settings, [alert("o-cli")])
    log = tmp_path / "deliver.log"
    child = ChildProcess("alerts-deliver", fstreams("alerts", "deliver", "--alertmanager-url",
                                                    webhook.url), env={
        "FSTREAMS_BOOTSTRAP_SERVERS": alert_settings.bootstrap_servers,
        "FSTREAMS_REGISTRY_URL": alert_settings.registry_url,
        "FSTREAMS_TOPIC_PREFIX": alert_settings.topic_prefix,
        "FSTREAMS_APP_ID": alert_settings.app_id,
        "FSTREAMS_LOG_FORMAT": "json",
        "FSTREAMS_ALERTING_START_FROM": "earliest",  # the record is older than the group
    }, log_path=log).start()
    try:
        await wait_until(lambda: bool(webhook.accepted()) or not child.running, timeout=30,
                         what="delivery by the CLI")
    finally:
        returncode = await asyncio.to_thread(child.stop, 15)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert returncode == 0, log.read_text()[-2000:]
    assert len(webhook.accepted()) == 1
    [stopped] = [line for line in lines if line["msg"] == "alert delivery stopped"]
    assert stopped["delivered"] == 1


async def test_silences_created_and_expired_while_running(
        alert_settings: Settings, webhook: WebhookReceiver, deliver: Deliver) -> None:
    run = deliver(alertmanager_urls=[webhook.url], silences_refresh_s=0.1)
    produce_alerts(alert_settings, [alert("o-before")])
    await wait_until(lambda: len(webhook.accepted()) == 1, what="first delivery")

    silence = await asyncio.to_thread(create_silence, alert_settings,
                                      [parse_matcher("order_id=~o-during.*")], 3_600_000,
                                      comment="test")
    await wait_until(lambda: run.stats.silences_loaded == 1, what="silence re-read")
    produce_alerts(alert_settings, [alert("o-during")])
    await wait_until(lambda: run.stats.total("silenced") == 1, what="silenced")

    await asyncio.to_thread(expire_silence, alert_settings, silence.silence_id)
    await wait_until(lambda: run.stats.silences_loaded == 0, what="expiry re-read")
    produce_alerts(alert_settings, [alert("o-during-2")])
    await run.wait_caught_up()

    assert [r.body["alerts"][0]["labels"]["order_id"] for r in webhook.accepted()] == [
        "o-before", "o-during-2"]
