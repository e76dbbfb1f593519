"""Every topic of the product, in one place: names, partitions, cleanup policy.

All four inputs and all derived topics are keyed by order_id and have the same partition count,
so an order's events meet in one partition of one worker (the co-partitioned join).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

from tables.schema_files import INPUT_TOPIC_KINDS, INPUT_TOPIC_RECORDS


@dataclass(frozen=True)
class TopicNames:
    orders: str = "orders"
    shipments: str = "shipments"
    returns: str = "returns"
    settlements: str = "settlements"
    fulfillment_states: str = "fulfillment-states"
    reconciliation_mismatches: str = "reconciliation-mismatches"
    sla_alerts: str = "sla-alerts"
    fulfillment_metrics: str = "fulfillment-metrics"
    dead_letters: str = "dead-letters"

    @classmethod
    def with_prefix(cls, prefix: str) -> TopicNames:
        return cls(**{f.name: prefix + f.default for f in fields(cls)})  # type: ignore[operator]

    @property
    def inputs(self) -> tuple[str, str, str, str]:
        return (self.orders, self.shipments, self.returns, self.settlements)

    @property
    def derived(self) -> tuple[str, ...]:
        return (self.fulfillment_states, self.reconciliation_mismatches, self.sla_alerts,
                self.fulfillment_metrics)

    def _base_of(self, topic: str) -> str:
        for base in INPUT_TOPIC_KINDS:
            if getattr(self, base) == topic:
                return base
        raise KeyError(f"{topic!r} is not an input topic")

    def kind_of(self, topic: str) -> str:
        """'order' | 'shipment' | 'return' | 'settlement' for an input topic name."""
        return INPUT_TOPIC_KINDS[self._base_of(topic)]

    def record_of(self, topic: str) -> str:
        """The Avro record name of an input topic's values (e.g. 'OrderEvent')."""
        return INPUT_TOPIC_RECORDS[self._base_of(topic)]

    def all(self) -> tuple[str, ...]:
        return (*self.inputs, *self.derived, self.dead_letters)


ORDER_STATE_TABLE = "order-state"
ORDER_TIMERS_TABLE = "order-timers"


def changelog_topic(app_id: str, table: str) -> str:
    """The changelog topic Faust keeps for `table` of app `app_id`."""
    return f"{app_id}-{table}-changelog"


def topic_configs(name: str, names: TopicNames) -> dict[str, str]:
    """Broker-side config per topic: dead letters keep 30 days, the rest the broker default."""
    if name == names.dead_letters:
        # Whole originals plus their reason: room for an input at the 1 MiB default and more.
        return {"retention.ms": str(30 * 86_400_000), "max.message.bytes": str(8 * 1024 * 1024)}
    return {}


def ensure_topics(bootstrap: str, names: TopicNames, partitions: int,
                  replication_factor: int = 1) -> list[str]:
    """Create missing topics (idempotent). Returns the names it created."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(t, num_partitions=partitions, replication_factor=replication_factor,
                 config=topic_configs(t, names))
        for t in names.all() if t not in existing
    ]
    if not wanted:
        return []
    created = []
    for topic, future in admin.create_topics(wanted, operation_timeout=15).items():
        try:
            future.result()
            created.append(topic)
        except Exception as exc:  # another worker created it first: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    wait_for_leaders(admin, [t.topic for t in wanted], partitions)
    return created


def wait_for_leaders(admin: Any, topics: list[str], partitions: int,
                     timeout_s: float = 30.0) -> None:
    """Return once every partition of `topics` has a leader, so that the first records into
    a topic created a moment ago are not refused and retried. (Records produced while the
    leaders settled came back "delivered" without an offset and were missing from the topic;
    this wait made that rarer, not impossible: the producers now treat such reports as not
    delivered, see streams.delivery_reports.)
    """
    deadline = time.monotonic() + timeout_s
    while True:
        meta = admin.list_topics(timeout=10).topics
        pending = [t for t in topics
                   if t not in meta or meta[t].error is not None
                   or len(meta[t].partitions) < partitions
                   or any(p.leader < 0 for p in meta[t].partitions.values())]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without a leader for every partition after "
                               f"{timeout_s}s: {', '.join(sorted(pending))}")
        time.sleep(0.1)
