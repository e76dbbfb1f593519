"""Silences, kept in the compacted topic ``<prefix>alert-silences``.

One record per silence, keyed by its id, JSON value (the ``tables.alerts.Silence`` fields);
a tombstone (null value) expires it, and compaction eventually forgets it. The topic is the
only state: every reader loads it start to end, so the CLI and any number of deliverers agree
without talking to each other. Silences are wall-clock (they mute people's pagers, not
stream time).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.delivery_reports import failure
from streams.producer import producer_config
from streams.settings import Settings
from streams.topic_reader import read_to_end
from tables.alerts import Matcher, Silence

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)(.*)$")
MATCHER_HELP = ("label=value, label!=value, label=~regex or label!~regex "
                "(e.g. warehouse=wms-east, rule=~ship_.*)")


class SilenceError(ValueError):
    """A silence cannot be created or expired; the message says what to change."""


class SilenceNotFound(SilenceError):
    """No silence has this id (or unique id prefix)."""


class SilenceWriteError(SilenceError):
    """The silences topic did not take the write (broker down): try again later."""


def silences_topic(settings: Settings) -> str:
    return f"{settings.topic_prefix}alert-silences"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_matcher(text: str) -> Matcher:
    """``warehouse=wms-east`` -> Matcher; quotes around the value are optional."""
    found = _MATCHER.match(text)
    if found is None:
        raise SilenceError(f"bad matcher {text!r}: expected {MATCHER_HELP}")
    label, op, value = found.group(1), found.group(2), found.group(3).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    try:
        return Matcher(label, op, value)
    except ValueError as exc:  # bad regex: Matcher says which and why
        raise SilenceError(f"bad matcher {text!r}: {exc}") from None


def to_json(silence: Silence) -> bytes:
    return json.dumps(asdict(silence), separators=(",", ":")).encode()


def from_json(raw: bytes) -> Silence:
    doc: dict[str, Any] = json.loads(raw)
    matchers = tuple(Matcher(m["label"], m["op"], m["value"]) for m in doc["matchers"])
    return Silence(silence_id=doc["silence_id"], matchers=matchers,
                   starts_at=int(doc["starts_at"]), ends_at=int(doc["ends_at"]),
                   created_by=doc.get("created_by", ""), comment=doc.get("comment", ""))


def ensure_silences_topic(bootstrap: str, topic: str, replication_factor: int = 1) -> None:
    """Create the topic compacted when missing. One partition: silences are few."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic in admin.list_topics(timeout=10).topics:
        return
    new = NewTopic(topic, num_partitions=1, replication_factor=replication_factor,
                   config={"cleanup.policy": "compact"})
    try:
        admin.create_topics([new], operation_timeout=15)[topic].result()
    except Exception as exc:  # someone else created it first: fine
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise


def _produce(settings: Settings, topic: str, key: str, value: bytes | None) -> None:
    errors: list[str] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        reason = failure(err, msg)
        if reason is not None:
            errors.append(reason)

    producer = Producer(producer_config(settings.bootstrap_servers,
                                        {"client.id": "fstreams-silences"}))
    producer.produce(topic, key=key.encode(), value=value, on_delivery=delivered)
    left = producer.flush(15)
    if left or errors:
        reason = errors[0] if errors else "no acknowledgement within 15s"
        raise SilenceWriteError(f"could not write to {topic} at {settings.bootstrap_servers}: "
                                f"{reason}. Is the broker up? (fstreams broker status)")


def create_silence(settings: Settings, matchers: Sequence[Matcher], duration_ms: int, *,
                   comment: str, created_by: str = "", starts_at: int | None = None) -> Silence:
    """Write a new silence and return it (its ``silence_id`` is what ``expire`` takes)."""
    if duration_ms <= 0:
        raise SilenceError("the duration must be positive (e.g. 30m, 2h, 1d)")
    if not comment.strip():
        raise SilenceError("say why in the comment (the next on-call reads it)")
    start = now_ms() if starts_at is None else starts_at
    try:
        silence = Silence(silence_id=uuid.uuid4().hex, matchers=tuple(matchers),
                          starts_at=start, ends_at=start + duration_ms,
                          created_by=created_by, comment=comment.strip())
    except ValueError as exc:
        raise SilenceError(str(exc)) from None
    topic = silences_topic(settings)
    ensure_silences_topic(settings.bootstrap_servers, topic, settings.replication_factor)
    _produce(settings, topic, silence.silence_id, to_json(silence))
    return silence


def load_silences(bootstrap: str, topic: str, *, timeout_s: float = 10.0) -> dict[str, Silence]:
    """Every silence not expired by a tombstone, by id (ended ones included)."""
    current: dict[str, Silence] = {}
    for msg in read_to_end(bootstrap, topic, timeout_s=timeout_s):
        key = (msg.key() or b"").decode()
        value = msg.value()
        if value is None:
            current.pop(key, None)
            continue
        try:
            current[key] = from_json(value)
        except (ValueError, KeyError, TypeError):
            continue  # not ours to judge here; a hand-written record must not break paging
    return current


def list_silences(settings: Settings, *, state: str = "active",
                  at_ms: int | None = None) -> list[Silence]:
    """``state``: active, pending (starts later), expired (ended) or all; by end time."""
    now = now_ms() if at_ms is None else at_ms
    found = load_silences(settings.bootstrap_servers, silences_topic(settings)).values()
    return sorted((s for s in found if state == "all" or silence_state(s, now) == state),
                  key=lambda s: (s.ends_at, s.silence_id))


def silence_state(silence: Silence, now: int) -> str:
    if silence.active(now):
        return "active"
    return "pending" if now < silence.starts_at else "expired"


def expire_silence(settings: Settings, silence_id: str) -> Silence:
    """Tombstone the silence now; returns what it was. Unknown ids raise SilenceError."""
    topic = silences_topic(settings)
    known = load_silences(settings.bootstrap_servers, topic)
    silence = known.get(silence_id)
    if silence is None:
        matches = [s for s in known if s.startswith(silence_id)] if len(silence_id) >= 6 else []
        if len(matches) != 1:
            raise SilenceNotFound(f"no silence {silence_id!r} in {topic}; "
                                  "list them with `fstreams alerts silences --state all`")
        silence = known[matches[0]]
    _produce(settings, topic, silence.silence_id, None)
    return silence
