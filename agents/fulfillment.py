"""The fulfillment agent: the co-partitioned join of the four input streams, one record per
order, and everything derived from it — canonical states, reconciliation mismatches, SLA alerts.

Faust's stream-stream joins are stubs, so the join is what Kafka Streams does underneath: all
four topics are keyed by order_id with equal partition counts, one agent consumes them together,
and every event is folded into the order's record in a RocksDB table (changelog in Kafka) by
the pure `tables.order_pipeline`. Reconciliation and SLA verdicts are evaluated here too, on
the same record in the same batch (see that module for why), and deadlines ("unsettled after
5 days") fire from stream-time timers (`streams/timers.py`).

The loop is batch-shaped for speed (streams/batching.py, streams/sink.py): decode and fold
every event of a batch, then per changed order once: settle its canonical state (one version
per order per batch), evaluate its verdicts, write its record; outputs go to librdkafka.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from faust.types import TP, EventT, TableT

from streams.app import Pipeline
from streams.batching import KeyedBatch, TableWriter
from streams.census_store import CensusStore
from streams.histogram import LATENCY_BUCKETS_MS, Histogram
from streams.ingest import RejectedInput, read_input
from streams.lag import input_lag
from streams.observations import PARTITION as OBSERVATIONS_PARTITION
from streams.observations import encode_observations, observations_topic
from streams.schema_source import RegistryUnavailable
from streams.serde import WireDecoder
from streams.timers import TimerIndex
from streams.topics import ORDER_STATE_TABLE, ORDER_TIMERS_TABLE
from streams.version_fence import VersionReader, raise_versions
from streams.version_fence import header as fence_header
from tables import order_pipeline
from tables.order_pipeline import Outputs, PipelineConfig, Record
from tables.order_runner import KINDS
from tables.windows import Observation

log = logging.getLogger(__name__)
STAGE_FOLD = "fold"
EX_SOFTWARE = 70  # sysexits: internal software error


class PartitionEvent:
    """Stands in for an event of `partition` when a tick (no event) writes tables: Faust's store
    only reads the partition from the current event."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = _PartitionOnly(partition)


class _PartitionOnly:
    __slots__ = ("partition",)

    def __init__(self, partition: int) -> None:
        self.partition = partition


class FulfillmentProcessor:
    """One batch of input events -> table writes, derived records and dead letters."""

    def __init__(self, pipeline: Pipeline, table: TableT, timers: TimerIndex,
                 config: PipelineConfig) -> None:
        services = pipeline.services
        names = self.names = pipeline.names
        self.app = pipeline.app
        self.table = table
        self.consumer = pipeline.app.consumer
        # Next offset to read, per input partition (the lag metrics read it too).
        self._positions: dict[TP, int] = services.setdefault("positions", {})
        # At-least-once: the version fence (streams/version_fence.py). Per partition fenced
        # since the assignment, the states offset its changelog records carry as a header.
        self.fence: VersionReader | None = None
        self._states_from: dict[int, int] = {}
        self._fence_headers: dict[int, list[tuple[str, bytes]]] = {}
        if pipeline.settings.processing_guarantee != "exactly_once":
            states = WireDecoder.for_record(services["schema_source"], "FulfillmentState")
            schema_id = services["encoders"][names.fulfillment_states].schema_id
            if schema_id is not None:  # what we write: readable during a registry outage
                states.prefetch(schema_id)
            self.fence = VersionReader(
                pipeline.settings.bootstrap_servers, table.changelog_topic.get_topic_name(),
                names.fulfillment_states, states.decode)
        # At-least-once: a batch's records land after its outputs (TableWriter), so a crash
        # never leaves a table that says a state or alert went out when it did not.
        self.writer = TableWriter(table, services["sink"], headers_for=(
            self._changelog_headers if self.fence is not None else None),
            after_outputs=self.fence is not None)
        self.timers = timers
        self.census = CensusStore(timers.table, timers.writer, table)
        self.latency: Histogram = services.setdefault("latency", Histogram(LATENCY_BUCKETS_MS))
        self._now_ms = 0  # wall clock of the batch, for the latency of what it emits
        self._trace = False  # DEBUG lines per emitted record, decided once per batch
        self.config = config
        # Due timers are evaluated `timer_step` per partition at a time: a jump of stream time
        # (an input going quiet, a late event far ahead) can make thousands due at once, and
        # evaluating them in one go held back the input behind them (the latency bench's
        # p99 of 400-550 ms came from there). See `_step_through_timers`.
        self.timer_step = pipeline.settings.timer_step
        self._timers_left: set[int] = set()  # partitions with due timers not yet evaluated
        self.decoders = services["decoders"]
        self.sink = services["sink"]
        self.dead_letters = services["dead_letters"]
        self.counters: dict[str, Any] = services.setdefault("counters", {})
        self.kinds = {topic: names.kind_of(topic) for topic in names.inputs}
        self.observations_topic = observations_topic(pipeline.settings.app_id)
        self._observations: list[Observation] = []  # this batch's, produced at its end
        encoders = services["encoders"]
        self.outputs = {  # output -> (topic, encode, counter)
            "state": (names.fulfillment_states, encoders[names.fulfillment_states].encode,
                      "states_emitted"),
            "mismatch": (names.reconciliation_mismatches,
                         encoders[names.reconciliation_mismatches].encode, "mismatch_records"),
            "alert": (names.sla_alerts, encoders[names.sla_alerts].encode, "alert_records"),
        }

    def owns(self, event: EventT) -> bool:
        """Whether `event` belongs to this worker's current assignment, with its tables ready.

        A batch gathered before a rebalance can reach the agent after it: while tables are
        revoked or recovering (flow control off) or from a previous generation. Writing its
        effects then races the partition's recovery here or on its new owner (the write lands
        after the new owner read the changelog, and our acknowledgement lets the group commit
        past it: a lost update). Such events are dropped without being committed (`hold`) and
        are read again from the committed offset by whoever owns the partition now.
        """
        app = self.app
        return (app.flow_control.is_active()
                and event.message.generation_id == app.consumer_generation_id)

    def hold(self, events: Sequence[EventT]) -> None:
        """Drop `events` unprocessed without their offsets ever being committed.

        What Faust does with a message of an old generation: it is marked done without being
        recorded as acknowledged, so the stream's ack after the batch is a no-op, a rebalance
        does not wait for it, and commits never move past it (it is read again).
        """
        unacked = self.consumer._unacked_messages
        for event in events:
            event.message.acked = True
            unacked.discard(event.message)
        self.counters["events_held"] = self.counters.get("events_held", 0) + len(events)

    async def process(self, events: Sequence[EventT]) -> None:
        if self.fence is not None:
            unfenced = {e.message.partition for e in events} - self._states_from.keys()
            if unfenced and all(self.owns(event) for event in events):
                await self._raise_emitted_versions(sorted(unfenced))
        if not all(self.owns(event) for event in events):
            stale = [event for event in events if not self.owns(event)]
            self.hold(stale)
            log.warning("held %d events read before a rebalance; their partitions' owner "
                        "reads them again", len(stale), extra={"held": ",".join(
                            f"{e.message.topic}[{e.message.partition}]@{e.message.offset}"
                            for e in stale)})
            events = [event for event in events if self.owns(event)]
        batch: KeyedBatch[Record] = KeyedBatch(self.table, self.writer)
        counters = self.counters
        self._start_batch()
        dead_before = counters.get("dead_lettered", 0)
        # key -> (canonical view of this batch or None, its last event)
        dirty: dict[bytes, tuple[Any, EventT]] = {}
        last_of_partition: dict[int, EventT] = {}
        for event in events:
            msg = event.message
            counters[msg.topic] = counters.get(msg.topic, 0) + 1
            # Read is read, dead letter or not: a partition whose last record was dead-lettered
            # is still read to its end and must not hold stream time back.
            self._positions[msg.tp] = msg.offset + 1
            try:
                value = self._decode(event)
            except RegistryUnavailable:
                value = await self._decode_when_registry_returns(event)
            if value is None:
                continue
            key = msg.key or b""
            kind = self.kinds[msg.topic]
            self.timers.clock(msg.partition, event).observe(kind, value["event_time"])
            last_of_partition[msg.partition] = event
            record = batch.get(key, event)
            if record is None:
                record = order_pipeline.new_record(key.decode())
            try:
                out = order_pipeline.on_event(record, kind, value, coalesce=True)
            except Exception as exc:  # a fold bug must not stop the stream; keep the evidence
                log.exception("fold failed", extra={
                    "order_id": key.decode(errors="replace"),
                    "correlation_id": value.get("correlation_id"), "topic": msg.topic,
                    "partition": msg.partition, "offset": msg.offset})
                self._dead_letter(event, exc, STAGE_FOLD, value.get("correlation_id"))
                continue
            batch.put(key, record, event)
            if out.needs_evaluation:
                dirty[key] = (None, event)
        counters["events_processed"] = (counters.get("events_processed", 0) + len(events)
                                        - (counters.get("dead_lettered", 0) - dead_before))
        # One canonical state per changed order per batch (a batch spans at most
        # batch_timeout_s): derive, encode and produce once, not once per event.
        for key, (_, event) in dirty.items():
            record = batch.get(key, event)
            if record is None:
                continue
            state, view = order_pipeline.settle_view(
                record, self.census.of(event.message.partition, event))
            if state is not None:
                self._emit("state", key, state)
                self._observe(order_pipeline.observe(record, state))
            dirty[key] = (view, event)  # the rules read the view: no second derive
        for partition, event in last_of_partition.items():
            self._evaluate_partition(partition, event, batch, dirty)
        self._finish(batch)
        await self._step_through_timers()

    async def tick(self) -> None:
        """Move stream time without new events: when an input of a partition has been read to
        its end since the last batch, time may advance to the other inputs' time and fire the
        timers that were waiting for it (e.g. the last deadlines before traffic stops)."""
        if not self.app.flow_control.is_active():  # rebalancing: tables may be recovering
            return
        batch: KeyedBatch[Record] = KeyedBatch(self.table, self.writer)
        self._start_batch()
        for partition in self.timers.partitions():
            self._evaluate_partition(partition, PartitionEvent(partition), batch, {})
        self._finish(batch)
        await self._step_through_timers()

    async def _step_through_timers(self) -> None:
        """Evaluate the due timers the last step left, a step per partition at a time, for as
        long as no input is waiting. Between steps the event loop runs (the consumer fetches),
        so input arriving during a storm of due timers waits for one step, not for the storm;
        the batches that take it go on stepping. With no input waiting the storm is finished
        here, so input committed to its end still means every timer due then has fired."""
        while self._timers_left:
            await asyncio.sleep(0)
            if not self.app.flow_control.is_active() or self._input_waiting():
                return  # a rebalance (the set is cleared) or a batch takes over
            batch: KeyedBatch[Record] = KeyedBatch(self.table, self.writer)
            self._start_batch()
            for partition in sorted(self._timers_left):
                self._evaluate_partition(partition, PartitionEvent(partition), batch, {})
            self._finish(batch)

    def _start_batch(self) -> None:
        self._now_ms = time.time_ns() // 1_000_000
        self._observations.clear()  # a batch that raised before its end leaves its own
        self._trace = log.isEnabledFor(logging.DEBUG)
        if self.fence is not None:
            self._refresh_fence_headers()

    def _refresh_fence_headers(self) -> None:
        """Per fenced partition, the header its changelog records carry from now on: an
        offset below every state emitted from now on (acknowledged states are below the
        rest; none of ours before the fence's end of the states)."""
        acked = self.sink.acked
        topic = self.names.fulfillment_states
        self._fence_headers = {p: fence_header(max(start, acked.get((topic, p), -1) + 1))
                               for p, start in self._states_from.items()}

    def _input_waiting(self) -> bool:
        return any(input_lag(self.app, self.names.inputs, self._positions).values())

    def _changelog_headers(self, partition: int) -> list[tuple[str, bytes]]:
        headers = self._fence_headers.get(partition)
        # A partition not fenced yet (cannot happen: fenced before its first write) would
        # send its successor to the start of the states: slow, never wrong.
        return headers if headers is not None else fence_header(0)

    async def _raise_emitted_versions(self, partitions: list[int]) -> None:
        """Fence newly assigned partitions (streams/version_fence.py): raise each order's
        version past what a crashed predecessor emitted beyond the restored table."""
        assert self.fence is not None
        started = time.monotonic()
        generation = self.app.consumer_generation_id
        try:
            found = await asyncio.to_thread(self.fence.read, partitions)
        except Exception:
            # Never stop the stream for it: go on unfenced (after a crash a version may then
            # repeat with other content) and let the changelog headers send the next owner
            # to the start of the states, until our own states are acknowledged.
            log.exception("version fence failed; versions not raised",
                          extra={"partitions": partitions})
            self._states_from.update(dict.fromkeys(partitions, 0))
            return
        if generation != self.app.consumer_generation_id or not self.app.flow_control.is_active():
            return  # rebalanced meanwhile: the partitions' owner (maybe us again) fences anew
        batch: KeyedBatch[Record] = KeyedBatch(self.table, self.writer)
        raised = 0
        for partition, emitted in found.items():
            event = PartitionEvent(partition)
            for key, version in emitted.versions.items():
                record = batch.get(key, event)  # type: ignore[arg-type]
                if record is None:  # its first record was lost too: keep the version alone
                    record = order_pipeline.new_record(key.decode())
                if raise_versions(record, version):
                    batch.put(key, record, event)  # type: ignore[arg-type]
                    raised += 1
            self._states_from[partition] = emitted.end
        self._refresh_fence_headers()
        batch.flush()
        self.counters["versions_raised"] = self.counters.get("versions_raised", 0) + raised
        log.log(logging.WARNING if raised else logging.INFO,
                "version fence: %d orders' versions raised past states already emitted",
                raised, extra={"partitions": partitions,
                               "states_read": {p: f.end - f.read_from for p, f in found.items()},
                               "elapsed_ms": round((time.monotonic() - started) * 1000)})

    def _finish(self, batch: KeyedBatch[Record]) -> None:
        # Before the table records: a record's counted milestones ("mc") must not reach the
        # changelog ahead of the observations that counted them (see order_pipeline.observe).
        self._produce_observations()
        batch.flush()
        self.sink.poll()
        self.writer.checkpoint()
        self.timers.writer.checkpoint()

    def _evaluate_partition(self, partition: int, event: EventT, batch: KeyedBatch[Record],
                            dirty: dict[bytes, tuple[Any, EventT]]) -> None:
        """Evaluate the partition's changed orders and its due timers at its stream time."""
        clock = self.timers.clock(partition, event)
        now = clock.now(self._idle_inputs(partition))
        self.timers.save_clock(partition, event)
        census = self.census.of(partition, event)
        pending = {key: state for key, (state, ev) in dirty.items()
                   if ev.message.partition == partition}
        if now is None:  # an input still has data to read: evaluate once time moves
            for key in pending:
                record = batch.get(key, event)
                if record is not None:
                    self.timers.settle(key, 0, [record["due"]], event)
                    record["due"] = 0
                    batch.put(key, record, event)
            self.census.save(partition, event)
            return
        found: dict[bytes, list[int]] = {}  # order key -> due times of its entries found
        due = self.timers.due(partition, now, self.timer_step)
        if len(due) == self.timer_step:
            self._timers_left.add(partition)
        else:
            self._timers_left.discard(partition)
        for due_ms, key in due:
            found.setdefault(key, []).append(due_ms)
            pending.setdefault(key, None)
        for key, state in pending.items():
            record = batch.get(key, event)
            popped = found.get(key, [])
            if record is None:  # a timer left by an order that has since expired
                self.timers.settle(key, None, popped, event)
                continue
            out: Outputs = order_pipeline.evaluate(record, now, self.config, state, census)
            if out.expired:  # closed and quiet for the retention: tombstone it
                batch.delete(key, event)
                # Its entries stay until a scan finds them with no record (above): deleted
                # now, a crash could keep that and lose the tombstone, and nothing would
                # evaluate the record again.
                for due_ms in popped:
                    self.timers.keep(key, due_ms, partition)
                self.counters["orders_expired"] = self.counters.get("orders_expired", 0) + 1
                continue
            # Timers move forward only: a due at or before now (none is expected) is dropped,
            # as it would fire again at once.
            due = record["due"] if record["due"] is None or record["due"] > now else None
            self.timers.settle(key, due, [out.previous_due, *popped], event,
                               reassert=bool(popped))
            batch.put(key, record, event)
            if out.state is not None:
                self._emit("state", key, out.state)
            self._observe(out.observations)
            for mismatch in out.mismatches:
                self._emit("mismatch", key, mismatch)
                self._count_by("mismatches", f"{mismatch['category']}|{mismatch['status']}")
            for alert in out.alerts:
                self._emit("alert", key, alert)
                self._count_by("alerts", f"{alert['rule']}|{alert['state']}")
            if out.reconciled is not None:
                self._count_by("reconciled", "yes" if out.reconciled else "no")
        self.census.save(partition, event)

    def forget_positions(self) -> None:
        self._positions.clear()
        self._timers_left.clear()  # a partition regained is evaluated by its next batch
        self._states_from.clear()  # a partition regained is fenced again
        self._fence_headers.clear()

    def _idle_inputs(self, partition: int) -> frozenset[str]:
        """Input kinds of `partition` read to their end (their time must not hold the clock
        back); an input whose end is not known yet counts as busy."""
        consumer = self.consumer
        idle = set()
        for topic, kind in self.kinds.items():
            tp = TP(topic, partition)
            highwater = consumer.highwater(tp)  # end offset as of the last fetch, or None
            if highwater is None:
                continue
            position = self._positions.get(tp)
            if position is None:  # nothing read from it in this process: where we resume
                position = consumer._committed_offset.get(tp) or 0
            if position >= highwater:
                idle.add(kind)
        return frozenset(idle)

    def _count_by(self, family: str, label: str) -> None:
        counts = self.counters.setdefault(family, {})  # type: ignore[call-overload]
        counts[label] = counts.get(label, 0) + 1

    def _emit(self, output: str, key: bytes, record: dict[str, Any]) -> None:
        topic, encode, counter = self.outputs[output]
        self.sink.produce(topic, key, encode(record))
        self.counters[counter] = self.counters.get(counter, 0) + 1
        if output == "state":  # event time of the order's newest event -> emitted
            self.latency.observe(self._now_ms - record["updated_at"])
        if self._trace:
            log.debug("emitted %s", output, extra={
                "order_id": key.decode(errors="replace"),
                "correlation_id": record.get("correlation_id"), "topic": topic})

    def _observe(self, observations: list[Observation]) -> None:
        """Keep a state's metric observations for the windows agent (see `_finish`)."""
        self._observations.extend(observations)

    def _produce_observations(self) -> None:
        """The batch's observations, in records of many (streams/observations.py)."""
        observations = self._observations
        if not observations:
            return
        for value in encode_observations(observations):
            self.sink.produce(self.observations_topic, None, value,
                              partition=OBSERVATIONS_PARTITION)
        self.counters["metric_observations"] = (
            self.counters.get("metric_observations", 0) + len(observations))
        observations.clear()

    async def _decode_when_registry_returns(self, event: EventT) -> dict[str, Any] | None:
        """A new writer schema id while the registry is down: the record is fine, we just
        cannot read it yet. Hold the partition (retry with backoff) rather than dead-letter."""
        delay = 0.5
        while True:
            msg = event.message
            log.warning("schema registry unreachable; retrying in %.1fs", delay, extra={
                "topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
                "order_id": (msg.key or b"").decode(errors="replace")})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            try:
                return self._decode(event)
            except RegistryUnavailable:
                continue

    def _decode(self, event: EventT) -> dict[str, Any] | None:
        msg = event.message
        try:
            return read_input(self.decoders[msg.topic], self.kinds[msg.topic], msg.value)
        except RejectedInput as rejected:
            self._dead_letter(event, rejected.cause, rejected.stage, rejected.correlation_id)
            return None

    def _dead_letter(self, event: EventT, exc: BaseException, stage: str,
                     correlation_id: str | None = None) -> None:
        msg = event.message
        self.counters["dead_lettered"] = self.counters.get("dead_lettered", 0) + 1
        self._count_by("dead_letters", f"{msg.topic}|{stage}|{type(exc).__name__}")
        self.dead_letters.send(msg.topic, msg.partition, msg.offset, msg.key, msg.value,
                               list(msg.headers or []), exc, stage,
                               correlation_id=correlation_id)


def register(pipeline: Pipeline) -> None:
    app, settings, names = pipeline.app, pipeline.settings, pipeline.names
    table = pipeline.bytes_table(ORDER_STATE_TABLE, help="per-order record")
    timer_table = pipeline.bytes_table(ORDER_TIMERS_TABLE, help="stream-time timers")
    timers = TimerIndex(timer_table, TableWriter(
        timer_table, pipeline.services["sink"],
        after_outputs=settings.processing_guarantee != "exactly_once"),
        KINDS, settings.allowed_lateness_ms)
    pipeline.services["order_table"] = table
    processor = FulfillmentProcessor(pipeline, table, timers, PipelineConfig(
        closed_order_retention_ms=settings.closed_order_retention_ms))
    pipeline.services["census"] = processor.census

    @app.on_partitions_revoked.connect
    async def _forget_clocks(app: Any, revoked: Any, **kwargs: Any) -> None:
        timers.forget_partitions()
        processor.forget_positions()
        processor.census.forget()
        # Offsets acknowledged in an earlier assignment must never be checkpointed as the
        # store's position later: another owner may have written past them meanwhile.
        pipeline.services["sink"].forget_acked()
    source = pipeline.topic(*names.inputs)

    # One batch or one tick at a time: a batch can await (registry outage retries). Under
    # exactly-once, offset commits (transaction commits) take it too.
    lock = asyncio.Lock()
    exactly_once = None
    if settings.processing_guarantee == "exactly_once":
        from streams import exactly_once

        exactly_once.install(app, pipeline.services["sink"], lock)

    @app.timer(1.0, name="fulfillment.tick")
    async def tick() -> None:
        async with lock:
            await processor.tick()
            if exactly_once is not None:  # see exactly_once.commit_idle
                exactly_once.commit_idle(pipeline.services["sink"])

    @app.agent(source, name="fulfillment")
    async def fulfillment_agent(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max_events,
                                               settings.batch_timeout_s):
            processed = False
            try:
                async with lock:
                    await processor.process(events)
                    if exactly_once is not None:
                        pipeline.services["sink"].input_batches += 1
                processed = True
            except Exception:
                # Bad input is dead-lettered inside; anything escaping is our failure.
                # Faust would ack this batch when the agent stops and commit past it
                # (lost input), so stop hard, uncommitted: a supervisor restarts the
                # worker and the batch is processed again.
                log.critical("batch failed; exiting without committing it", exc_info=True)
                os._exit(EX_SOFTWARE)
            finally:
                if not processed:  # cancelled (stopping): the stream still acks the batch
                    processor.hold(events)
