"""The schema topic: created compacted with one partition; an unsafe existing topic is refused."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from registry.errors import StoreError
from registry.server import run
from registry.settings import RegistrySettings
from registry.topic import ensure_schema_topic


async def topic_facts(bootstrap: str, topic: str) -> tuple[int, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, None)])
        policy = next(c[1] for c in response.resources[0][4] if c[0] == "cleanup.policy")
        return len(described["partitions"]), policy
    finally:
        await admin.close()


async def create_plain_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def test_new_topic_is_compacted_with_one_partition(kafka_bootstrap: str) -> None:
    topic = f"_schemas-new-{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_schema_topic(kafka_bootstrap, topic, None))
    asyncio.run(ensure_schema_topic(kafka_bootstrap, topic, None))  # and accepted again
    assert asyncio.run(topic_facts(kafka_bootstrap, topic)) == (1, "compact")


@pytest.mark.parametrize(("partitions", "reason"), [(1, "cleanup.policy=delete"),
                                                    (3, "has 3 partitions")])
def test_unsafe_existing_topic_is_refused(
    kafka_bootstrap: str, partitions: int, reason: str
) -> None:
    topic = f"_schemas-unsafe-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_plain_topic(kafka_bootstrap, topic, partitions))
    with pytest.raises(StoreError, match=reason):
        asyncio.run(ensure_schema_topic(kafka_bootstrap, topic, None))


def test_registry_refuses_to_start_on_an_unsafe_topic(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"_schemas-unsafe-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_plain_topic(kafka_bootstrap, topic, 1))
    settings = RegistrySettings(bootstrap_servers=kafka_bootstrap, topic=topic, port=0)
    with pytest.raises(SystemExit) as exited:
        run(settings)  # what `python -m registry` runs, minus the process start-up
    assert exited.value.code == 1
    assert "cleanup.policy=delete" in caplog.text
