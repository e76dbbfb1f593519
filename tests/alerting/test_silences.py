"""Silences in the compacted topic: matcher syntax, create/list/expire, periodic re-reads."""

from __future__ import annotations

import asyncio

import pytest

from streams.alerting.silence_cache import SilenceCache
from streams.alerting.silences import (
    SilenceError,
    create_silence,
    expire_silence,
    list_silences,
    parse_matcher,
    silences_topic,
)
from streams.settings import Settings
from tables.alerts import Matcher, is_silenced
from tests.alerting.support import alert, wait_until


@pytest.mark.parametrize(("text", "expected"), [
    ("warehouse=wms-east", Matcher("warehouse", "=", "wms-east")),
    ("rule != ship_by_breached", Matcher("rule", "!=", "ship_by_breached")),
    ('carrier=~"ups|dhl"', Matcher("carrier", "=~", "ups|dhl")),
    ("order_id!~o-1.*", Matcher("order_id", "!~", "o-1.*")),
])
def test_matcher_syntax(text: str, expected: Matcher) -> None:
    assert parse_matcher(text) == expected


@pytest.mark.parametrize("text", ["warehouse", "=x", "ware house=x", "rule=~("])
def test_bad_matchers_say_the_syntax(text: str) -> None:
    with pytest.raises(SilenceError, match="bad matcher"):
        parse_matcher(text)


def test_create_list_expire(alert_settings: Settings) -> None:
    east = create_silence(alert_settings, [parse_matcher("warehouse=wms-east")], 60_000,
                          comment="maintenance", created_by="ana")
    later = create_silence(alert_settings, [parse_matcher("rule=delivery_late")], 60_000,
                           comment="carrier outage", starts_at=east.starts_at + 30_000)
    now = east.starts_at + 1

    assert list_silences(alert_settings, at_ms=now) == [east]
    assert list_silences(alert_settings, state="pending", at_ms=now) == [later]
    assert list_silences(alert_settings, state="expired", at_ms=now + 120_000) == [east, later]
    assert is_silenced(alert("o-1", warehouse="wms-east,wms-west"), [east], now)

    assert expire_silence(alert_settings, east.silence_id) == east
    assert list_silences(alert_settings, state="all", at_ms=now) == [later]
    with pytest.raises(SilenceError, match="no silence"):
        expire_silence(alert_settings, east.silence_id)


async def test_cache_rereads_the_topic(alert_settings: Settings) -> None:
    cache = SilenceCache(alert_settings.bootstrap_servers, silences_topic(alert_settings))
    await cache.refresh()  # the topic does not exist yet: no silences, no error
    assert cache.silences == []
    halt = asyncio.Event()
    task = asyncio.create_task(cache.keep_fresh(0.1, halt))
    try:
        silence = await asyncio.to_thread(
            create_silence, alert_settings, [parse_matcher("warehouse=wms-east")], 60_000,
            comment="test")
        await wait_until(lambda: cache.silences == [silence], what="silence picked up")
        await asyncio.to_thread(expire_silence, alert_settings, silence.silence_id)
        await wait_until(lambda: cache.silences == [], what="expiry picked up")
    finally:
        halt.set()
        await task
