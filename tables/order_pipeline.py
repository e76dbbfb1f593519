"""Everything derived from one order, purely: the fold, reconciliation and SLA alerts.

The live agent and the bulk replay both drive this module, so they cannot disagree. Per order
the table keeps one *record* (a JSON-able dict)::

    f    the fold's fact store (tables.fulfillment)
    rec  open reconciliation mismatches by mismatch_id (tables.reconciliation)
    sla  the order's AlertBook snapshot (tables.alerts)
    rd   whether the money was reconciled at the last emitted version
    cs   the fulfillment status of the last emitted version: what the partition's census
         counts the order under (tables.census)
    due  the stream time of the order's next timer (None = no timer)
    mc   what the analysts' metrics have counted of the order so far (tables.metrics_rules):
         observations are taken where a state is emitted, so a version counts exactly once
    no   true for a settlement line that names no order at all (keyed by its line id):
         reconciliation reports it as an orphan settlement; SLA rules, which are about
         orders, leave it alone

Why one record and not three tables: reconciliation and SLA rules read the fold's facts
(orphans, per-return refunds, exception episodes), so evaluating them where the facts are —
same partition, same batch, same read — costs no extra topic hop, decode or lookup.

Two steps, so a driver can batch: `on_event` folds one event (and says whether the verdicts
may have changed); `evaluate` re-runs reconciliation and SLA rules for an order at a stream
time — once per order per batch, and when the order's timer comes due. Verdicts depend only
on the facts and the stream time, so evaluating an order once after its last event of a
batch gives the same verdicts as after each event, for a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tables import census as tally
from tables import fulfillment, metrics_rules, reconciliation, sla
from tables.alerts import AlertBook, Silence
from tables.census import Census
from tables.reconciliation_config import DEFAULT_CONFIG, ReconciliationConfig
from tables.records import FulfillmentState, ReconciliationMismatch, SlaAlert
from tables.sla_rules import Rule, load_rules
from tables.windows import Observation

Record = dict[str, Any]


# Chargebacks and late refunds arrive weeks after delivery: keep closed orders ~a quarter.
DEFAULT_RETENTION_MS = 90 * 86_400_000


@dataclass(frozen=True)
class PipelineConfig:
    rules: tuple[Rule, ...] = field(default_factory=lambda: tuple(load_rules()))
    reconciliation: ReconciliationConfig = DEFAULT_CONFIG
    silences: tuple[Silence, ...] = ()
    # A closed order (delivered or cancelled, no return in progress, money settled, nothing
    # open) leaves the hot table this long after its last event, as a tombstone.
    closed_order_retention_ms: int = DEFAULT_RETENTION_MS


@dataclass
class Outputs:
    state: FulfillmentState | None = None
    mismatches: list[ReconciliationMismatch] = field(default_factory=list)
    alerts: list[SlaAlert] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)  # of `state`, for metrics
    previous_due: int | None = None  # the order's timer before this step
    needs_evaluation: bool = False
    applied: bool = False  # the event was new and folded into the record
    expired: bool = False  # delete the record (and its timer): the order is closed
    reconciled: bool | None = None  # the money verdict, when this step reached one


def new_record(key: str) -> Record:
    return {"f": fulfillment.new_state(key), "rec": {}, "sla": {"alerts": []}, "rd": False,
            "due": None, "mc": metrics_rules.new_counted()}


def on_event(record: Record, kind: str, event: Mapping[str, Any], *,
             coalesce: bool = False) -> Outputs:
    """Fold one input event. A replayed event (same event_id) returns nothing to do.

    With `coalesce` (the bulk path) the canonical state is not derived per event: the caller
    settles each changed order (`settle_view`) once at the end of its batch, one version per batch.
    """
    facts = record["f"]
    if fulfillment.seen(facts, event["event_id"]):
        return Outputs(previous_due=record["due"])
    if event.get("order_id") is None:
        record["no"] = True
    if coalesce:
        changed = fulfillment.fold_event(facts, kind, event) == fulfillment.MATERIAL
        return Outputs(previous_due=record["due"], applied=True,
                       needs_evaluation=changed or facts["snap"] is None)
    state = fulfillment.step(facts, kind, event)
    # Rules read the canonical view and the facts behind it: an event that changed neither
    # (a repeated carrier scan) cannot change a verdict. Orphans have no view yet, so any new
    # event of theirs counts (the orphan rules look at when they started).
    return Outputs(state=state, previous_due=record["due"], applied=True,
                   needs_evaluation=state is not None or facts["snap"] is None)


def evaluate(record: Record, now_ms: int, config: PipelineConfig,
             state: FulfillmentState | None = None, census: Census | None = None) -> Outputs:
    """Re-evaluate reconciliation and SLA rules for the order at stream time `now_ms`.

    `state` is the order's canonical view as of this batch, if the caller has it (the latest
    emitted state, or the view `settle_view` derived; saves a derive). The result carries a
    new version of the canonical state only when the reconciled verdict flipped; mismatches
    and alerts are the transitions to emit. `census` (the partition's) follows the order's
    firing alerts and its expiry.
    """
    out = Outputs(previous_due=record["due"])
    facts = record["f"]
    derived = state if state is not None else fulfillment.derive(facts)
    inputs = reconciliation.inputs_from_fold(facts, derived)
    review = reconciliation.review(inputs.order, inputs.settlements, inputs.refunds, now_ms,
                                   config.reconciliation)
    out.mismatches, record["rec"] = reconciliation.advance(record["rec"], review.open, now_ms)
    out.reconciled = review.reconciled if inputs.order is not None else None
    if review.reconciled != record["rd"]:
        record["rd"] = review.reconciled
        out.state = fulfillment.republish(facts, derived)  # money caught up: a new version
        if out.state is not None:
            stamp(record, out.state, census)
            out.observations = observe(record, out.state)

    open_mismatches = list(record["rec"].values())
    firing_before = tally.firing_alerts(record) if census is not None else 0
    book = AlertBook.restore(record["sla"])
    if record.get("no"):
        breaches, ahead = [], []
    else:
        breaches, ahead = sla.assess(config.rules, facts, now_ms, mismatches=open_mismatches,
                                     derived=derived)
    out.alerts = book.observe(sla.order_subject(facts["order_id"]), breaches, now_ms,
                              silences=config.silences)
    record["sla"] = book.snapshot()
    if census is not None:
        tally.count_alerts(census, firing_before, tally.firing_alerts(record))

    candidates = [due for _, due in ahead] + review.deadlines
    book_due = book.next_due(silences=config.silences)
    if book_due is not None:
        candidates.append(max(book_due, now_ms + 1))
    retention = config.closed_order_retention_ms
    if not record["rec"] and not len(book) and fulfillment.is_closed(facts, now_ms, retention):
        out.expired = True
        record["due"] = None
        tally.forget(census, record)
        return out
    if facts["tmax"] is not None and facts["tmax"] + retention > now_ms:
        candidates.append(facts["tmax"] + retention)  # look again when it may have closed
    record["due"] = min(candidates, default=None)
    return out


def settle_view(record: Record, census: Census | None = None
                ) -> tuple[FulfillmentState | None, FulfillmentState | None]:
    """After a coalesced batch: the order's canonical state as one new version if it changed
    (else None), and its canonical view either way: hand that to `evaluate` as `state` so the
    rules do not derive it a second time."""
    state, view = fulfillment.settle_view(record["f"])
    if state is not None:
        stamp(record, state, census)
    return state, view


def stamp(record: Record, state: FulfillmentState,
          census: Census | None = None) -> FulfillmentState:
    """Set the record's reconciled verdict on a state about to be emitted, and count the
    order under the state's fulfillment status (in `census`, the partition's, if given)."""
    state["reconciled"] = record["rd"]
    tally.count_status(census, record, state["fulfillment_status"])
    return state


def observe(record: Record, state: FulfillmentState) -> list[Observation]:
    """The metric observations `state` (about to be emitted) adds to what was counted.

    Taken here, beside the version they count, rather than by a second agent reading the
    states back: no decode and no second table per state, and the record's changelog keeps
    "counted" and "emitted" in step (a version never counts twice, even after a crash).
    A record kept from before records carried `mc` adopts its current state as counted:
    its milestones were counted then, and counting them again would double them.
    """
    counted = record.get("mc")
    if counted is None:  # new records start with one: this one predates them
        counted = record["mc"] = metrics_rules.new_counted()
        metrics_rules.observe(counted, state)
        return []
    return metrics_rules.observe(counted, state)


def fulfillment_state(record: Record) -> FulfillmentState | None:
    """The canonical state of the record's order (None for an orphan), for queries."""
    derived = fulfillment.derive(record["f"])
    if derived is not None:
        derived["version"] = record["f"]["v"]
        derived["reconciled"] = record["rd"]
    return derived


def open_alerts(record: Record) -> Sequence[Mapping[str, Any]]:
    return AlertBook.restore(record["sla"]).active()
