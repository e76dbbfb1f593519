"""Drive `tables.order_pipeline` over one partition's events, in memory.

The same loop the live agent runs on Faust tables, without Faust: records in a dict, timers
on a `Deadlines` wheel, stream time on a `StreamClock`. The bulk replay runs one per
partition, and tests use it as the oracle. Emitted items are `(output, key, record)` with
output "state", "observation" (a metric observation of the state before it), "mismatch",
"alert" or "expired".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tables import census as tally
from tables.clock import AlignedClock, Deadlines
from tables.order_pipeline import (
    Outputs,
    PipelineConfig,
    Record,
    evaluate,
    new_record,
    observe,
    on_event,
    settle_view,
    stamp,
)
from tables.records import FulfillmentState
from tables.schema_files import INPUT_TOPIC_KINDS

Emitted = tuple[str, str, Any]
InputEvent = tuple[str, str, Mapping[str, Any]]  # (key, kind, event)
KINDS = tuple(INPUT_TOPIC_KINDS.values())  # the inputs of a partition: order, shipment, ...
ALL_IDLE = frozenset(KINDS)  # every input read to its end: time is the newest event seen


def timer_id(key: str) -> str:
    return f"order:{key}"


def verdicts(key: str, out: Outputs) -> Iterator[Emitted]:
    if out.state is not None:
        yield "state", key, out.state
    for observation in out.observations:
        yield "observation", key, observation
    for mismatch in out.mismatches:
        yield "mismatch", key, mismatch
    for alert in out.alerts:
        yield "alert", key, alert


def emitted_state(key: str, record: Record, state: FulfillmentState) -> list[Emitted]:
    """A new canonical state and the metric observations it brings (taken as it is emitted,
    see `order_pipeline.observe`)."""
    return [("state", key, state),
            *(("observation", key, obs) for obs in observe(record, state))]


class OrderRunner:
    def __init__(self, config: PipelineConfig, allowed_lateness_ms: int,
                 records: dict[str, Record] | None = None, *, coalesce: bool = False) -> None:
        """`coalesce`: one canonical state per changed order per batch (the bulk replay),
        instead of one per changing event (what the live agent emits)."""
        self.config = config
        self.coalesce = coalesce
        self.clock = AlignedClock(KINDS, allowed_lateness_ms)
        self.records: dict[str, Record] = records if records is not None else {}
        self.timers = Deadlines()
        self.touched: set[str] = set()  # keys whose record changed since this runner started
        # The partition's census (tables.census), kept as the agent keeps it. Records loaded
        # from a table written before records carried a counted status are adopted, and so
        # count as touched (a replay rewrites them).
        uncounted = [key for key, record in self.records.items()
                     if tally.COUNTED_STATUS not in record]
        self.census = tally.recount(self.records.values(), adopt=True)
        self.touched.update(key for key in uncounted
                            if tally.COUNTED_STATUS in self.records[key])
        for key, record in self.records.items():
            if record.get("due") is not None:
                self.timers.schedule(timer_id(key), record["due"], {"key": key})

    def process(self, key: str, kind: str, event: Mapping[str, Any]) -> list[Emitted]:
        return self.process_batch([(key, kind, event)])

    def process_batch(self, events: Iterable[InputEvent],
                      idle: frozenset[str] = ALL_IDLE) -> list[Emitted]:
        """Fold a batch, then evaluate each changed order once and fire due timers.

        `idle` names the inputs (kinds) read to their end; the others hold stream time back
        (see `AlignedClock`). The default suits a batch that holds everything there is.
        """
        result: list[Emitted] = []
        dirty: dict[str, FulfillmentState | None] = {}
        for key, kind, event in events:
            self.clock.observe(kind, event["event_time"])
            record = self.records.get(key)
            if record is None:
                record = self.records[key] = new_record(key)
            out = on_event(record, kind, event, coalesce=self.coalesce)
            if out.applied:
                self.touched.add(key)
            if out.state is not None:
                result += emitted_state(key, record, stamp(record, out.state, self.census))
            if out.needs_evaluation:
                dirty[key] = out.state if out.state is not None else dirty.get(key)
        if self.coalesce:
            for key in dirty:
                record = self.records[key]
                state, view = settle_view(record, self.census)
                if state is not None:
                    result += emitted_state(key, record, state)
                dirty[key] = view  # the rules read the view: no second derive
        now = self.clock.now(idle)
        if now is not None:
            result += self.advance(now, dirty)
        else:  # no stream time yet: a timer due at once evaluates them when time moves
            for key in dirty:
                self.records[key]["due"] = 0
                self._move_timer(key, self.records[key])
        return result

    def advance(self, now_ms: int,
                dirty: Mapping[str, FulfillmentState | None] | None = None) -> list[Emitted]:
        """Evaluate `dirty` orders and every order whose timer is due at `now_ms`."""
        result: list[Emitted] = []
        pending: dict[str, FulfillmentState | None] = dict(dirty or {})
        while True:
            for _, payload in self.timers.pop_due(now_ms):
                pending.setdefault(payload["key"], None)
            if not pending:
                return result
            for key, state in pending.items():
                record = self.records.get(key)
                if record is None:  # expired earlier in this call
                    continue
                out = evaluate(record, now_ms, self.config, state, self.census)
                self.touched.add(key)
                self._move_timer(key, record)
                result += verdicts(key, out)
                if out.expired:
                    del self.records[key]
                    result.append(("expired", key, None))
            pending = {}

    def _move_timer(self, key: str, record: Record) -> None:
        if record["due"] is None:
            self.timers.cancel(timer_id(key))
        else:
            self.timers.schedule(timer_id(key), record["due"], {"key": key})
