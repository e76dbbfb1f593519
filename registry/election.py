"""Elect the single instance allowed to write to the schema topic.

All instances join one Kafka consumer group. The group's leader (picked by the broker) runs
``WriterAssignor.assign``, which sees every member's advertised URL and chooses the writer: the
current writer if it is still a member (so a joining instance does not take over), otherwise the
eligible member with the lowest URL. The choice reaches every member in its assignment. No
partitions are assigned: the group exists only to agree on the writer, and a member that dies or
leaves triggers a new election within the session timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


class WriterAssignor(AbstractPartitionAssignor):
    name = "fstreams-registry-writer"
    version = 0

    def __init__(self, election: WriterElection) -> None:
        self._election = election

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:  # type: ignore[override]
        e = self._election
        info = {"url": e.own_url, "eligible": e.eligible, "writer": e.claims_writer}
        user_data = json.dumps(info).encode()
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), user_data)

    def assign(  # type: ignore[override]
        self, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        infos: list[dict[str, Any]] = []
        for meta in members.values():
            with contextlib.suppress(ValueError, TypeError):
                infos.append(json.loads(meta.user_data))
        writer = choose_writer(infos)
        log.info("writer election among %s members: %s", len(members), writer)
        payload = json.dumps({"writer": writer}).encode()
        return {
            member: ConsumerProtocolMemberAssignment(self.version, [], payload)
            for member in members
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:  # type: ignore[override]
        writer = None
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            writer = json.loads(assignment.user_data).get("writer")
        self._election.set_writer(writer if isinstance(writer, str) else None)


def choose_writer(infos: list[dict[str, Any]]) -> str | None:
    """The current writer if still present, else the lowest eligible URL; None if none."""
    eligible = sorted(
        str(i["url"]) for i in infos if i.get("eligible") and isinstance(i.get("url"), str)
    )
    current = sorted(str(i["url"]) for i in infos if i.get("writer") and i.get("eligible"))
    if current:
        return current[0]
    return eligible[0] if eligible else None


class _Revocations(ConsumerRebalanceListener):
    def __init__(self, election: WriterElection) -> None:
        self._election = election

    def on_partitions_revoked(self, revoked: Any) -> None:
        # A rebalance has begun: until it ends nobody may assume it is the writer.
        self._election.suspend()

    def on_partitions_assigned(self, assigned: Any) -> None:
        pass


class WriterElection:
    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        topic: str,
        own_url: str,
        eligible: bool = True,
        session_timeout_ms: int = 6000,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.topic = topic
        self.own_url = own_url
        self.eligible = eligible
        self.session_timeout_ms = session_timeout_ms
        self.writer_url: str | None = None
        # The writer chosen before the rebalance under way; kept so the next election is sticky.
        self._last_writer: str | None = None
        self.generation = 0
        self._known = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def is_writer(self) -> bool:
        return self.writer_url is not None and self.writer_url == self.own_url

    @property
    def claims_writer(self) -> bool:
        return self._last_writer == self.own_url

    def set_writer(self, url: str | None) -> None:
        self.generation += 1
        if url != self._last_writer:
            log.info("elected writer: %s%s", url, " (this instance)" if url == self.own_url else "")
        self.writer_url = url
        self._last_writer = url
        if url is not None:
            self._known.set()

    def suspend(self) -> None:
        self.writer_url = None
        self._known.clear()

    async def wait_for_writer(self, timeout: float) -> str | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._known.wait()
        return self.writer_url

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            partition_assignment_strategy=(WriterAssignor(self),),
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(500, self.session_timeout_ms // 6),
            max_poll_interval_ms=60000,
            client_id="fstreams-registry-election",
        )
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=_Revocations(self))
        self._task = asyncio.create_task(self._poll(), name="registry-election")

    async def _poll(self) -> None:
        # Nothing is assigned, but polling keeps the member alive and drives the group protocol.
        assert self._consumer is not None
        while True:
            try:
                await self._consumer.getmany(timeout_ms=1000)
            except KafkaError as exc:
                log.warning("writer election: %s", exc)
                await asyncio.sleep(1)

    async def stop(self) -> None:
        self.suspend()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            # Leaving the group (rather than timing out) lets the others re-elect at once.
            with contextlib.suppress(Exception):
                await self._consumer.stop()
