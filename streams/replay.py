"""Bulk replay: recompute order state and canonical outputs from the input topics, off Faust.

Used after a rule fix (`rebuild`: empty state, from the beginning), for backfills and to catch
up a large backlog (from a time or from the committed offsets, over the current state). It
calls the same pure `tables.fulfillment` functions as the live agent, in a confluent-kafka
batch loop per partition (`streams.replay_partitions`), split over job processes when there is
enough to do (`streams.replay_jobs`: the partitions are independent), then:

1. writes each touched order's final state once to the table's changelog topic (same key,
   same partition as the live agent would), tombstoning orders a rebuild no longer has;
2. flushes the canonical states it emitted to `fulfillment-states`;
3. once every partition is handed over, commits the live application's consumer-group offsets
   at the end offsets it replayed to, so Faust workers recover the table from the changelog
   and continue live from there. A failed or interrupted job commits nothing.

Live workers must be stopped while it runs (it refuses when the group has active members).
Replaying over existing state is safe: events are deduplicated by event_id, so an event the
state already holds changes nothing and emits nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.observations import observations_topic
from streams.replay_jobs import ReplayFailed, ReplayInterrupted, job_count, run_jobs, split
from streams.replay_partitions import PartitionReplay, Ranges, ReplayPlan, ReplaySummary
from streams.schema_source import RegistrySchemaSource, SchemaSource
from streams.settings import Settings
from streams.topics import ORDER_STATE_TABLE, ORDER_TIMERS_TABLE, TopicNames, changelog_topic

__all__ = ["ReplayFailed", "ReplayInterrupted", "ReplayPlan", "ReplayRefused", "ReplaySummary",
           "Replayer"]
log = logging.getLogger(__name__)


class ReplayRefused(RuntimeError):
    """Replay would race live workers or has nothing to do; the message says what to do."""


def _group_is_active(admin: AdminClient, group: str) -> bool:
    described = admin.describe_consumer_groups([group])[group].result(timeout=15)
    return bool(described.members)


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        raise ReplayRefused(f"topic {topic!r} does not exist; nothing to replay")
    return sorted(meta.partitions)


class Replayer:
    def __init__(self, settings: Settings, source: SchemaSource | None = None,
                 progress: Callable[[ReplaySummary], None] | None = None,
                 jobs: int | None = None) -> None:
        """`jobs`: processes to replay in (default `settings.replay_jobs`; 0 = one per CPU
        for large replays, see `replay_jobs.job_count`). `source` is used as given in every
        process (it must pickle when jobs > 1); by default each makes its registry client."""
        self.settings = settings
        self.names = TopicNames.with_prefix(settings.topic_prefix)
        self.given_source = source
        self.progress = progress
        self.jobs = settings.replay_jobs if jobs is None else jobs
        self.group = settings.app_id
        # The live group's offsets: read for the ranges, committed at the end (by assignment,
        # so it never joins the group).
        self.consumer = Consumer({
            "bootstrap.servers": settings.bootstrap_servers, "group.id": self.group,
            "enable.auto.commit": False, "enable.partition.eof": False,
        })
        self.admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})

    # -- offsets -------------------------------------------------------------------------------
    def _ranges(self, plan: ReplayPlan) -> Ranges:
        ranges: Ranges = {}
        for topic in self.names.inputs:
            tps = [TopicPartition(topic, p) for p in _partitions(self.consumer, topic)]
            committed = {(tp.topic, tp.partition): tp.offset
                         for tp in self.consumer.committed(tps, timeout=15)}
            by_time: dict[tuple[str, int], int] = {}
            if plan.start not in ("beginning", "committed") and not plan.rebuild:
                stamped = [TopicPartition(topic, tp.partition, int(plan.start)) for tp in tps]
                for tp in self.consumer.offsets_for_times(stamped, timeout=15):
                    by_time[(tp.topic, tp.partition)] = tp.offset
            for tp in tps:
                low, high = self.consumer.get_watermark_offsets(tp, timeout=15)
                if plan.rebuild or plan.start == "beginning":
                    start = low
                elif plan.start == "committed":
                    start = committed.get((topic, tp.partition), -1)
                    start = low if start < 0 else start
                else:
                    start = by_time.get((topic, tp.partition), OFFSET_END)
                    start = high if start < 0 else start
                ranges[(topic, tp.partition)] = (max(start, low), high)
        return ranges

    # -- the run -------------------------------------------------------------------------------
    def run(self, plan: ReplayPlan) -> ReplaySummary:
        settings = self.settings
        if not plan.force and _group_is_active(self.admin, self.group):
            raise ReplayRefused(
                f"consumer group {self.group!r} has live members: stop the workers first "
                "(replay and live workers must not both write the table), or pass --force")
        started = time.monotonic()
        ranges = {tp: r for tp, r in self._ranges(plan).items() if r[1] > r[0]}
        load: dict[int, int] = {}
        for (_, p), (start, end) in ranges.items():
            load[p] = load.get(p, 0) + end - start
        jobs = job_count(self.jobs, settings.partitions, sum(load.values()))
        if not plan.dry_run:  # before any job writes to them
            # As the windows agent declares it: one partition.
            self._ensure_topic(observations_topic(settings.app_id), 1, {})
            for table in (ORDER_STATE_TABLE, ORDER_TIMERS_TABLE):
                self._ensure_topic(changelog_topic(settings.app_id, table),
                                   settings.partitions, {"cleanup.policy": "compact"})

        def progress(summary: ReplaySummary) -> None:
            if self.progress is not None:
                summary.seconds = time.monotonic() - started
                self.progress(summary)

        if jobs == 1:
            summary = self._run_here(plan, ranges, progress)
        else:
            summary = run_jobs(settings, self.given_source, plan, ranges,
                               split(settings.partitions, jobs, load), progress)
        summary.jobs = jobs
        if not plan.dry_run:
            ends = {tp: end for tp, (_, end) in ranges.items()}
            self._commit(ends)
            summary.committed = {f"{t}[{p}]": o for (t, p), o in ends.items()}
        summary.seconds = time.monotonic() - started
        return summary

    def _run_here(self, plan: ReplayPlan, ranges: Ranges,
                  progress: Callable[[ReplaySummary], None]) -> ReplaySummary:
        """Every partition in this process."""
        source = self.given_source or RegistrySchemaSource.from_settings(self.settings)
        share = PartitionReplay(self.settings, source, plan, ranges,
                                range(self.settings.partitions))
        try:
            share.compute(progress)
            return share.hand_over()
        finally:
            share.close()

    def _ensure_topic(self, name: str, partitions: int, config: dict[str, str]) -> None:
        """Create a topic (a changelog as Faust would: compacted, co-partitioned) if missing."""
        if name in self.admin.list_topics(timeout=10).topics:
            return
        topic = NewTopic(name, num_partitions=partitions,
                         replication_factor=self.settings.replication_factor, config=config)
        try:
            self.admin.create_topics([topic])[name].result(timeout=30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise

    def _commit(self, ends: dict[tuple[str, int], int]) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
        if offsets:
            self.consumer.commit(offsets=offsets, asynchronous=False)

    def close(self) -> None:
        self.consumer.close()
