"""One order's story as a ledger: scenarios call its methods in the order things happen, it
builds the events and records what was *intended* (units per line, money, times) for the truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from streams.generator import builders, catalog, settlement
from streams.generator.catalog import Ids
from streams.generator.thresholds import HOUR_MS, band_fee


@dataclass
class LineFacts:
    line_id: str
    sku: str
    title: str
    unit_price: int
    ordered: int
    cancelled: int = 0
    backordered: int = 0
    substituted: int = 0
    substituted_sku: str | None = None
    substituted_unit_price: int | None = None


@dataclass
class ShipmentFacts:
    shipment_id: str
    source_system: str
    warehouse: str
    carrier: str
    tracking_number: str
    lines: dict[str, int]
    times: dict[str, int] = field(default_factory=dict)  # first time of each status
    exceptions: list[list[int | None]] = field(default_factory=list)  # [start, end or None]
    last_status: str = ""

    @property
    def cancelled(self) -> bool:
        return "cancelled" in self.times


@dataclass
class ReturnFacts:
    return_id: str
    source_system: str
    lines: dict[str, int]
    reason: str
    times: dict[str, int] = field(default_factory=dict)
    refund_amount: int | None = None


@dataclass
class MoneyLine:
    transaction_type: str
    amount: int  # signed as posted
    currency: str
    provider: str
    settlement_id: str
    settlement_line_id: str
    posted: int


@dataclass
class ExpectedMismatch:
    category: str
    expected: int
    actual: int
    currency: str
    due_at: int  # event time from which the engine can know (deadline for absence checks)
    settlement_line_ids: list[str] = field(default_factory=list)
    actual_currency: str | None = None  # set when the settled currency differs


Emitted = tuple[str, str | None, dict[str, Any]]  # (topic, key, value)


class OrderStory:
    """Ledger of one order (or, for orphans, one unknown order id)."""

    def __init__(self, *, story: str, seq: int, seed: int, rng: random.Random,
                 placed_at: int, min_units: int = 1, min_lines: int = 1) -> None:
        self.story, self.seed, self.rng = story, seed, rng
        self.ids = Ids(rng)
        self.order_id = self.ids.order_id()
        ch = rng.choices(catalog.CHANNELS, weights=[c.weight for c in catalog.CHANNELS])[0]
        self.channel, self.source_system = ch.channel, ch.source_system
        providers = dict(ch.providers)
        self.provider = catalog.weighted(rng, providers)
        self.country = "US" if ch.source_system == "amazon" else catalog.weighted(
            rng, catalog.MARKET_WEIGHTS)
        self.currency, self.tax_bps, self.taxes_included = catalog.MARKETS[self.country]
        self.service_level = catalog.weighted(rng, catalog.SERVICE_WEIGHTS)
        ship_h, deliver_h, *_ = catalog.SERVICE_LEVELS[self.service_level]
        self.placed_at = placed_at
        self.promised_ship_by = placed_at + ship_h * HOUR_MS
        self.promised_deliver_by = placed_at + deliver_h * HOUR_MS
        self.external_order_ref = self.ids.external_order_ref(self.source_system, seq)
        self.customer_ref = self.ids.customer_ref()
        self.checkout_corr = self.ids.uuid()
        self.fulfil_corr = self.ids.uuid()
        self.lines = self._draw_lines(min_units, min_lines)
        self.totals = self._totals()
        self.events: list[Emitted] = []
        self.shipments: list[ShipmentFacts] = []
        self.returns: list[ReturnFacts] = []
        self.money: list[MoneyLine] = []
        self.mismatches: list[ExpectedMismatch] = []
        self.cancelled_at: int | None = None
        self.order_known = True  # False for orphan ids: no order event ever

    # --- order ---

    def _draw_lines(self, min_units: int, min_lines: int) -> dict[str, LineFacts]:
        n = max(min_lines, self.rng.choices((1, 2, 3, 4), weights=(0.45, 0.3, 0.17, 0.08))[0])
        skus = self.rng.sample(catalog.SKUS, n)
        lines: dict[str, LineFacts] = {}
        for i, (sku, title, price) in enumerate(skus, start=1):
            qty = self.rng.choices((1, 2, 3), weights=(0.7, 0.22, 0.08))[0]
            line_id = f"{self.order_id}-L{i}"
            lines[line_id] = LineFacts(line_id, sku, title, price, qty)
        short = min_units - sum(line.ordered for line in lines.values())
        if short > 0:
            next(iter(lines.values())).ordered += short
        return lines

    def _totals(self) -> dict[str, Any]:
        subtotal = sum(line.unit_price * line.ordered for line in self.lines.values())
        discounts = subtotal // 10 if self.rng.random() < 0.2 else 0  # a 10% code
        shipping = 0 if subtotal >= 5_000 else 599
        if self.service_level != "standard":
            shipping += 1_000
        taxable = subtotal - discounts
        if self.taxes_included:  # VAT already inside the prices
            tax = taxable * self.tax_bps // (10_000 + self.tax_bps)
            total = taxable + shipping
        else:
            tax = (taxable * self.tax_bps + 5_000) // 10_000
            total = taxable + tax + shipping
        return dict(builders.order_totals(subtotal, discounts, tax, shipping, total,
                                          self.taxes_included))

    @property
    def subtotal(self) -> int:
        return int(self.totals["subtotal"])

    @property
    def order_total(self) -> int:
        return int(self.totals["total"])

    def expected_charge(self) -> int:
        """What should be captured after cancellations (the fold's convention: floor pro-rata
        by kept merchandise value)."""
        kept = sum(ln.unit_price * (ln.ordered - ln.cancelled) for ln in self.lines.values())
        if kept == 0:
            return 0
        if kept == self.subtotal:
            return self.order_total
        return self.order_total * kept // self.subtotal

    def _emit(self, topic: str, value: dict[str, Any]) -> dict[str, Any]:
        self.events.append((topic, value["order_id"], value))
        return value

    def _head(self, t: int, source_system: str, corr: str) -> dict[str, Any]:
        return builders.envelope(self.ids.uuid(), t, source_system, corr, self.order_id)

    def _order_event(self, type_: str, t: int, lines: list[Any], *, totals: bool = False,
                     reason: str | None = None) -> dict[str, Any]:
        value = builders.order_event(
            self._head(t, self.source_system, self.checkout_corr), type_,
            channel=self.channel, customer_ref=self.customer_ref,
            external_order_ref=self.external_order_ref, currency=self.currency, lines=lines,
            totals=dict(self.totals) if totals else None,  # type: ignore[arg-type]
            promised_ship_by=self.promised_ship_by, promised_deliver_by=self.promised_deliver_by,
            service_level=self.service_level, ship_to_country=self.country, reason=reason)
        return self._emit("orders", value)

    def place(self) -> None:
        lines = [builders.order_line(ln.line_id, ln.sku, ln.title, ln.ordered, ln.unit_price)
                 for ln in self.lines.values()]
        self._order_event("placed", self.placed_at, lines, totals=True)

    def _affected(self, line_id: str, qty: int, **extra: Any) -> Any:
        ln = self.lines[line_id]
        return builders.order_line(ln.line_id, ln.sku, ln.title, ln.ordered, ln.unit_price,
                                   quantity_affected=qty, **extra)

    def cancel_line(self, t: int, line_id: str, qty: int, reason: str = "customer") -> None:
        self.lines[line_id].cancelled += qty
        self._order_event("line_cancelled", t, [self._affected(line_id, qty)], reason=reason)

    def backorder(self, t: int, line_id: str, qty: int) -> None:
        self.lines[line_id].backordered += qty
        self._order_event("backordered", t, [self._affected(line_id, qty)], reason="inventory")

    def substitute(self, t: int, line_id: str, qty: int, sku: str, price: int | None) -> None:
        ln = self.lines[line_id]
        ln.substituted, ln.substituted_sku, ln.substituted_unit_price = qty, sku, price
        line = self._affected(line_id, qty, substituted_sku=sku, substituted_unit_price=price)
        self._order_event("substituted", t, [line], reason="inventory")

    def cancel_order(self, t: int, reason: str) -> None:
        """Whole-order cancel: everything that has not shipped is cancelled."""
        for line_id, ln in self.lines.items():
            ln.cancelled = ln.ordered - min(ln.ordered, self.units("shipped", line_id))
        self.cancelled_at = t
        self._order_event("cancelled", t, [], reason=reason)

    # --- shipments ---

    def new_shipment(self, lines: dict[str, int]) -> ShipmentFacts:
        source, facility = (catalog.FBA_WAREHOUSE if self.source_system == "amazon"
                            and self.rng.random() < 0.5 else self.rng.choice(catalog.WAREHOUSES))
        carrier = "amzl" if source == "amazon-fba" else self.rng.choice(
            catalog.CARRIERS[self.country])
        sh = ShipmentFacts(self.ids.shipment_id(facility), source, facility, carrier,
                           self.ids.tracking_number(carrier), dict(lines))
        self.shipments.append(sh)
        return sh

    def ship_status(self, sh: ShipmentFacts, status: str, t: int, *,
                    exception_reason: str | None = None, eta: int | None = None) -> None:
        carrier_scan = status in ("in_transit", "out_for_delivery", "delivered", "exception")
        source = f"carrier-{sh.carrier}" if carrier_scan else sh.source_system
        lines = [] if carrier_scan else [
            {"line_id": line_id, "sku": self._shipped_sku(line_id), "quantity": qty}
            for line_id, qty in sh.lines.items()]
        value = builders.shipment_event(
            self._head(t, source, self.fulfil_corr), sh.shipment_id, status,
            lines,  # type: ignore[arg-type]
            warehouse=sh.warehouse, carrier=sh.carrier if status != "created" else None,
            service_level=catalog.CARRIER_SERVICE[self.service_level],
            tracking_number=sh.tracking_number if status not in ("created", "allocated",
                                                                 "picked") else None,
            estimated_delivery_at=eta, exception_reason=exception_reason)
        self._emit("shipments", value)
        sh.times.setdefault(status, t)
        if status == "exception":
            sh.exceptions.append([t, None])
        elif sh.exceptions and sh.exceptions[-1][1] is None:
            sh.exceptions[-1][1] = t  # any later scan closes the exception
        sh.last_status = status

    def _shipped_sku(self, line_id: str) -> str:
        ln = self.lines[line_id]
        return ln.substituted_sku if ln.substituted and ln.substituted_sku else ln.sku

    def units(self, status: str, line_id: str) -> int:
        """Units of a line that reached ``status`` in shipments not cancelled before shipping."""
        return sum(sh.lines.get(line_id, 0) for sh in self.shipments
                   if status in sh.times and not (sh.cancelled and "shipped" not in sh.times))

    # --- returns ---

    def new_return(self, lines: dict[str, int]) -> ReturnFacts:
        rt = ReturnFacts(self.ids.return_id(), self.rng.choice(catalog.RETURNS_PLATFORMS),
                         dict(lines), self.rng.choice(catalog.RETURN_REASONS))
        self.returns.append(rt)
        return rt

    def return_status(self, rt: ReturnFacts, status: str, t: int,
                      refund_amount: int | None = None) -> None:
        with_lines = status in ("requested", "received", "inspected")
        lines = [{"line_id": line_id, "sku": self._shipped_sku(line_id), "quantity": qty,
                  "reason": rt.reason, "condition": "sellable" if status == "inspected" else None}
                 for line_id, qty in rt.lines.items()] if with_lines else []
        source = "amazon" if self.source_system == "amazon" else rt.source_system
        if refund_amount is not None:
            rt.refund_amount = refund_amount
        value = builders.return_event(
            self._head(t, source, rt.return_id), rt.return_id, status,
            lines,  # type: ignore[arg-type]
            reason=rt.reason, refund_amount=refund_amount,
            currency=self.currency if refund_amount is not None else None,
            warehouse=self.rng.choice(catalog.RETURN_CENTERS) if status == "received" else None)
        self._emit("returns", value)
        rt.times.setdefault(status, t)

    # --- settlements ---

    def settle(self, transaction_type: str, amount: int, money_at: int, *,
               currency: str | None = None, keyed: bool = True,
               posted: int | None = None) -> MoneyLine:
        """Post one settlement line ``lag`` after the money moved (``money_at``).

        ``keyed=False`` is a line the provider could not match to any order (order_id null).
        """
        provider = self.provider
        posted = posted if posted is not None else money_at + settlement.lag(self.rng, provider)
        period = settlement.period_of(provider, posted)
        sid = settlement.settlement_id(self.seed, provider, period[0])
        line_id = self.ids.settlement_line_id(provider)
        oid = self.order_id if keyed else None
        head = builders.envelope(self.ids.uuid(), posted, settlement.SETTLEMENT_SOURCES[provider],
                                 sid, oid)  # type: ignore[arg-type]
        value = builders.settlement_event(
            head, settlement_id=sid, settlement_line_id=line_id, provider=provider,
            transaction_type=transaction_type, amount=amount,
            currency=currency or self.currency, posted_time=posted, period=period,
            external_order_ref=self.external_order_ref,
            description=settlement.description(provider, transaction_type))
        # Unmatched lines are keyed by their line id, as the producer SDK keys them.
        self.events.append(("settlements", oid or line_id, value))
        line = MoneyLine(transaction_type, amount, currency or self.currency, provider, sid,
                         line_id, posted)
        self.money.append(line)
        return line

    def charge(self, amount: int, money_at: int, *, fee_factor: float = 1.0,
               currency: str | None = None) -> tuple[MoneyLine, MoneyLine]:
        """A captured charge and its fee line, posted together in the same payout."""
        charge = self.settle("charge", amount, money_at, currency=currency)
        fee = int(band_fee(self.provider, amount) * fee_factor)
        fee_line = self.settle("fee", -fee, money_at, currency=currency, posted=charge.posted)
        return charge, fee_line

    def expect(self, category: str, expected: int, actual: int, due_at: int,
               lines: list[MoneyLine] | None = None, actual_currency: str | None = None) -> None:
        self.mismatches.append(ExpectedMismatch(
            category, expected, actual, self.currency, due_at,
            [ln.settlement_line_id for ln in lines or []], actual_currency))
