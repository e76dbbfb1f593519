"""Create the schema topic, or check that an existing one can safely hold the registry.

Existence is checked by listing topics: asking for one topic's metadata would let a broker with
``auto.create.topics.enable`` create it on the spot with the default (deleting) cleanup policy.
"""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from registry.errors import StoreError

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    # Tombstones must outlive a replaying instance's read; one day is ample.
    "delete.retention.ms": "86400000",
}


async def ensure_schema_topic(
    bootstrap_servers: str, topic: str, replication_factor: int | None
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        if topic in await admin.list_topics():
            await _check_existing(admin, topic)
            return
        brokers = len((await admin.describe_cluster()).get("brokers", [])) or 1
        factor = min(replication_factor or 3, brokers)
        new_topic = NewTopic(topic, 1, factor, topic_configs=TOPIC_CONFIG)
        response = await admin.create_topics([new_topic])
        for _name, code, *detail in response.topic_errors:
            if code == TOPIC_ALREADY_EXISTS:  # another instance created it a moment ago
                await _check_existing(admin, topic)
            elif code != 0:
                raise StoreError(f"creating schema topic {topic} failed: error {code} {detail}")
        log.info("created schema topic %s (replication factor %s, compacted)", topic, factor)
    finally:
        await admin.close()


async def _check_existing(admin: AIOKafkaAdminClient, topic: str) -> None:
    described = [t for t in await admin.describe_topics([topic]) if t.get("topic") == topic]
    partitions = len(described[0].get("partitions", [])) if described else 0
    if partitions != 1:
        raise StoreError(f"schema topic {topic} has {partitions} partitions; it must have 1")
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, None)]
    )
    policy = next(
        (entry[1] for response in responses for resource in response.resources
         for entry in resource[4] if entry[0] == "cleanup.policy"),
        None,
    )
    if policy != "compact":
        # With deletion the broker would drop old schemas after the retention time.
        raise StoreError(
            f"schema topic {topic} has cleanup.policy={policy}; it must be 'compact' "
            f"(kafka-configs --alter --entity-type topics --entity-name {topic} "
            "--add-config cleanup.policy=compact)"
        )
