"""Exactly-once for the live path (`processing_guarantee = "exactly_once"`).

The worker's outputs and table changelog writes go through one librdkafka producer (the
`OutputSink`), not through Faust's producers, so Faust's own transactions (one aiokafka
producer per partition) cannot cover them. Instead that producer is transactional and every
consumer-offset commit Faust makes becomes the commit of a Kafka transaction holding the
offsets and every record produced since the previous commit:

    begin -> outputs + changelog records of the batches -> send_offsets -> commit -> begin ...

A `read_committed` consumer of the derived topics therefore sees each output once, however
often the worker crashes; what a killed worker had produced since its last commit is aborted
when its successor (same worker id, so same transactional id) initialises the producer.

What must hold around that:
- The worker reads with `read_committed`, so table recovery (and standbys) never restore
  changelog writes of an aborted transaction; recovery steps over the commit markers at the
  end of a changelog (after two idle 5 s polls, Faust's rule: a restart takes ~10 s longer).
- A local RocksDB store written by a worker that died mid-transaction holds writes that were
  aborted; it is only trusted after a clean stop (a marker file), otherwise the tables are
  restored from their changelogs.
- Faust commits while no batch is being processed (the agent's lock), so a transaction never
  holds outputs of a batch without its offsets, nor offsets without their outputs.
- Zombies are fenced two ways. A successor with the same worker id takes over the
  transactional id (two live workers must never share a worker id). And the offsets go into
  the transaction with the worker's group membership (generation, member id, instance id:
  KIP-447), so the broker refuses the commit of a worker the group has moved on from, e.g.
  one paused past its session while its partitions went to another worker. A worker that
  learns it is no longer a member (its consumer resets the generation) while its transaction
  holds records exits without committing them: they belong to partitions another worker now
  owns, and its tables hold their writes, so a restart restores the tables from the
  changelogs (`tests/reliability/test_zombie.py`).

Dead letters and the windowed-metrics agents' outputs stay at-least-once (their own producers).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from faust.types import TP

from streams.sink import OutputNotDelivered, OutputSink

log = logging.getLogger(__name__)
CLEAN_STOP_MARKER = ".clean-stop"
TRANSACTION_TIMEOUT_MS = 60_000
EX_SOFTWARE = 70


def transactional_id(app_id: str, worker_id: str) -> str:
    return f"{app_id}-{worker_id}-outputs"


@dataclass(frozen=True)
class Membership:
    """The worker's place in its consumer group, as its consumer last knew it."""

    generation: int
    member_id: str = ""
    instance_id: str | None = None

    @property
    def lost(self) -> bool:
        """The consumer was told the group no longer knows it (it reset its generation)."""
        return self.generation < 0


NON_MEMBER = Membership(-1)


def group_metadata(group_id: str, membership: Membership) -> bytes:
    """Consumer group metadata as librdkafka serializes it (its "CGMDv2" form, which
    confluent-kafka passes to `send_offsets_to_transaction` as bytes). The group's consumer
    is aiokafka's (Faust's), so librdkafka cannot produce it; `TransactionalSink` checks
    this layout against librdkafka's own before relying on it."""
    head = (b"CGMDv2:" + struct.pack("=i", membership.generation) + group_id.encode() + b"\0"
            + membership.member_id.encode() + b"\0")
    if membership.instance_id is None:
        return head + b"\1"
    return head + b"\0" + membership.instance_id.encode() + b"\0"


class TransactionalSink(OutputSink):
    """An `OutputSink` whose records are only visible (read_committed) once committed together
    with the consumer offsets that caused them."""

    def __init__(self, bootstrap: str, *, group_id: str, transactional_id: str,
                 client_id: str = "fstreams-sink", init_timeout_s: float = 60.0) -> None:
        super().__init__(bootstrap, client_id=client_id, extra={
            "transactional.id": transactional_id,
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
        })
        self.group_id = group_id
        self.transactional_id = transactional_id
        self.commits = 0
        self.uncommitted = 0  # records produced since the last commit
        self.input_batches = 0  # input batches processed since the last commit (the agent)
        # Fences a predecessor with the same transactional id and aborts what it left open.
        self._producer.init_transactions(init_timeout_s)
        # The worker's group membership now (`install` points it at Faust's consumer).
        self.membership: Callable[[], Membership] = lambda: NON_MEMBER
        self._non_member = _group_metadata(bootstrap, group_id)
        # Our layout of the metadata is only used while it matches librdkafka's own.
        self.fencing = group_metadata(group_id, NON_MEMBER) == self._non_member
        if not self.fencing:
            log.warning("this librdkafka serializes group metadata otherwise: offsets are "
                        "committed without the group generation, so a worker paused past its "
                        "session is not fenced by the broker", extra={
                            "librdkafka": repr(self._non_member)})
        self._producer.begin_transaction()
        # Changelog offsets as of the last commit. A store must not record an offset inside
        # the open transaction as its position: recovery reads the changelog read_committed,
        # whose end stops before an open transaction, and Faust refuses a store ahead of it.
        self._committed_acked: dict[tuple[str, int], int] = {}

    @property
    def checkpointable(self) -> dict[tuple[str, int], int]:
        return self._committed_acked

    def forget_acked(self) -> None:
        super().forget_acked()
        self._committed_acked = {}

    def _send(self, *args: Any) -> None:
        super()._send(*args)
        self.uncommitted += 1

    def commit(self, offsets: Mapping[TP, int], membership: Membership = NON_MEMBER,
               timeout_s: float = 30.0) -> None:
        """Commit the open transaction with `offsets` (next offset to read, per partition)
        and open the next one. Raises KafkaException when the transaction cannot commit, e.g.
        when the group has moved on from `membership`."""
        producer = self._producer
        positions = [TopicPartition(tp.topic, tp.partition, offset)
                     for tp, offset in offsets.items()]
        if positions:
            group = (group_metadata(self.group_id, membership) if self.fencing
                     else self._non_member)
            producer.send_offsets_to_transaction(positions, group, timeout_s)
        producer.commit_transaction(timeout_s)
        self.flush()  # surfaces delivery errors; nothing is in flight after a commit
        self._committed_acked = dict(self.acked)
        self.commits += 1
        self.uncommitted = 0
        self.input_batches = 0
        producer.begin_transaction()

    def close(self) -> None:
        """Leave the open transaction alone: the last commit (Faust's, at stop) closed what
        belongs to committed input; the rest is aborted by the successor."""
        try:
            self.flush(10.0)
        except OutputNotDelivered as exc:
            log.error("outputs not delivered at shutdown; they are recomputed on restart: %s",
                      exc)


def _group_metadata(bootstrap: str, group_id: str) -> Any:
    """The group's metadata as a non-member (generation -1): enough for a transactional
    offset commit, without joining the group Faust's consumer is a member of."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id})
    try:
        return consumer.consumer_group_metadata()
    finally:
        consumer.close()


def install(app: Any, sink: TransactionalSink, lock: asyncio.Lock) -> None:
    """Route Faust's offset commits into `sink`'s transactions, and read only committed
    records. `lock` is held by the agent while it processes a batch."""
    consumer = app.consumer

    sink.membership = partial(_membership, consumer)

    async def commit_in_transaction(offsets: Mapping[TP, int]) -> bool:
        membership = sink.membership()
        if membership.lost:
            _exit_if_holding(sink)
            return False  # the offsets of partitions that may have moved: not ours to commit
        assignment = consumer.assignment()
        committable = {tp: offset for tp, offset in offsets.items() if tp in assignment}
        if not committable:
            return False
        async with lock:
            try:
                sink.commit(committable, membership)
            except (KafkaException, OutputNotDelivered):
                # Fenced (a successor took our transactional id) or the transaction failed:
                # nothing of it is visible. Stop uncommitted; a restart redoes the work.
                log.critical("transaction commit failed; exiting without it", exc_info=True)
                os._exit(EX_SOFTWARE)
        return True

    consumer._commit = commit_in_transaction
    _read_committed(app)
    app.tables.recovery.app = _TransactionalRecoveryView(app)


def _membership(consumer: Any) -> Membership:
    """The group membership of Faust's aiokafka consumer, read from its coordinator."""
    coordinator = consumer._thread._ensure_consumer()._coordinator
    return Membership(coordinator.generation, coordinator.member_id or "",
                      coordinator._group_instance_id)


def _exit_if_holding(sink: TransactionalSink) -> None:
    """The group no longer counts this worker a member. Records in the open transaction came
    from partitions that may be another worker's by now, and the tables hold their writes:
    exit without committing them; the restart (no clean-stop marker) restores the tables
    from their changelogs, and its producer aborts the transaction."""
    if sink.uncommitted or sink.input_batches:
        log.critical("no longer a member of the consumer group (paused past its session?) "
                     "with %d records of %d input batches uncommitted: exiting without them",
                     sink.uncommitted, sink.input_batches)
        os._exit(EX_SOFTWARE)


class _TransactionalRecoveryView:
    """The app as table recovery sees it: in a transaction.

    A transactional changelog ends with a commit marker, an offset that is never delivered
    as a record, so recovery would wait forever for the last offset before the highwater.
    Faust's recovery knows to step over such markers only when the app is "in a transaction"
    (its own exactly-once), which ours is not; everything else is the app itself.
    """

    in_transaction = True

    def __init__(self, app: Any) -> None:
        object.__setattr__(self, "_app", app)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._app, name, value)


def commit_idle(sink: TransactionalSink) -> None:
    """Commit what stream-time ticks produced while no input arrived (alerts and timers that
    fire as time moves), under the agent's lock.

    Faust commits only when there are new input offsets, so without this a tick's outputs
    would wait in an open transaction, and every read_committed consumer with them, until
    the next input or the transaction timeout. Only when no input batch was processed since
    the last commit: then nothing in the transaction is owed to uncommitted input.
    """
    if sink.membership().lost:  # ticks of partitions that may have moved: not ours
        _exit_if_holding(sink)
        return
    if sink.uncommitted and not sink.input_batches:
        try:
            sink.commit({})
        except (KafkaException, OutputNotDelivered):
            log.critical("transaction commit failed; exiting without it", exc_info=True)
            os._exit(EX_SOFTWARE)


def _read_committed(app: Any) -> None:
    """Make Faust's consumer (inputs, table recovery, standbys) read committed records only.

    Faust picks the isolation level from its own processing guarantee, which stays
    at-least-once here (its transactions would not cover our producer), so set it on the
    aiokafka consumer right after Faust creates it, before it starts fetching.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    thread_cls: Any = AIOKafkaConsumerThread
    if getattr(thread_cls, "_fstreams_read_committed", False):
        return
    create = thread_cls._create_worker_consumer

    def create_read_committed(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._isolation_level = "read_committed"
        return consumer

    thread_cls._create_worker_consumer = create_read_committed
    thread_cls._fstreams_read_committed = True


def trust_local_tables(table_dir: Path) -> None:
    """Before the worker starts: keep local table stores only if the previous run stopped
    cleanly; after a crash they may hold aborted writes, so restore from the changelogs."""
    marker = table_dir / CLEAN_STOP_MARKER
    if table_dir.exists() and not marker.exists() and any(table_dir.iterdir()):
        log.warning("the previous run did not stop cleanly; restoring tables from their "
                    "changelogs instead of the local stores", extra={"dir": str(table_dir)})
        shutil.rmtree(table_dir)
    marker.unlink(missing_ok=True)


def mark_clean_stop(table_dir: Path, sink: TransactionalSink) -> None:
    """After the worker stopped: the local stores hold committed writes only (the last commit
    happened at stop and nothing was produced after it)."""
    if sink.uncommitted == 0 and table_dir.exists():
        (table_dir / CLEAN_STOP_MARKER).touch()
    else:
        log.warning("records produced after the last commit; the next start restores tables "
                    "from their changelogs", extra={"uncommitted": sink.uncommitted})
