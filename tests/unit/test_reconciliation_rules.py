"""Reconciliation rules, one category at a time, with the tricky money cases."""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from tables.reconciliation import (
    DEFAULT_CONFIG,
    OrderLineMoney,
    OrderMoney,
    ReconciliationConfig,
    ReturnRefund,
    SettlementLine,
    evaluate,
    expected_charge,
    is_reconciled,
    settled_totals,
)

ALLOCATE = ReconciliationConfig(proration="allocate")

T0 = 1_763_900_000_000
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
SHIPPED = T0 + DAY
LAG = 5 * DAY
LATER = T0 + 60 * DAY  # far past every lag and grace

_ids = itertools.count(1)


def order_money(
    total: int = 3_000,
    lines: tuple[tuple[str, int, int, int], ...] = (("l1", 1_000, 2, 0), ("l2", 1_000, 1, 0)),
    **fields: object,
) -> OrderMoney:
    defaults: dict[str, object] = {
        "first_shipped_at": SHIPPED,
        "shipped_at": SHIPPED,
        "shipment_count": 1,
        "source_systems": ("shopify",),
        "correlation_id": "corr-o-1",
    }
    defaults.update(fields)
    return OrderMoney(
        order_id="o-1",
        currency=str(fields.pop("currency", "USD")),
        total=total,
        lines=tuple(OrderLineMoney(*ln) for ln in lines),
        **{k: v for k, v in defaults.items() if k != "currency"},  # type: ignore[arg-type]
    )


def stl(
    kind: str,
    amount: int,
    t: int = SHIPPED + DAY,
    line_id: str | None = None,
    *,
    provider: str = "stripe",
    currency: str = "USD",
    settlement_id: str = "st-1",
    order_id: str | None = "o-1",
    description: str | None = None,
) -> SettlementLine:
    return SettlementLine(
        settlement_line_id=line_id or f"sl-{next(_ids)}",
        settlement_id=settlement_id,
        provider=provider,
        transaction_type=kind,
        amount=amount,
        currency=currency,
        posted_time=t,
        event_time=t,
        order_id=order_id,
        correlation_id=f"corr-{order_id}",
        description=description,
    )


def refund(
    amount: int | None, refunded_at: int | None = SHIPPED + 10 * DAY, return_id: str = "r-1"
) -> ReturnRefund:
    return ReturnRefund(return_id, amount, "USD", SHIPPED + 5 * DAY, refunded_at)


def paid(amount: int = 3_000, t: int = SHIPPED + DAY) -> list[SettlementLine]:
    """A stripe charge with its in-band fee."""
    fee = DEFAULT_CONFIG.fee_bands["stripe"].fee_for(amount)
    return [stl("charge", amount, t), stl("fee", -fee, t)]


def cats(found: dict[str, dict]) -> set[str]:
    return {m["category"] for m in found.values()}


# --- charges ---


def test_happy_order_has_no_mismatch_and_is_reconciled() -> None:
    lines = paid()
    assert evaluate(order_money(), lines, (), LATER) == {}
    assert is_reconciled(order_money(), lines, (), LATER)


def test_unsettled_opens_exactly_at_the_lag_and_clears_with_the_charge() -> None:
    order = order_money()
    assert evaluate(order, [], (), SHIPPED + LAG - 1) == {}
    found = evaluate(order, [], (), SHIPPED + LAG)
    assert list(found) == ["o-1:unsettled"]
    m = found["o-1:unsettled"]
    assert (m["expected"], m["actual"], m["difference"]) == (3_000, 0, -3_000)
    assert m["status"] == "open" and m["detected_at"] == SHIPPED + LAG
    assert m["provider"] == "shopify_payments"  # guessed from the order's source system
    assert m["correlation_id"] == "corr-o-1"
    assert evaluate(order, paid(), (), LATER) == {}
    assert not is_reconciled(order, [], (), LATER)


def test_unsettled_needs_a_shipment_and_something_to_charge() -> None:
    assert evaluate(order_money(first_shipped_at=None, shipped_at=None), [], (), LATER) == {}
    assert evaluate(order_money(fully_cancelled=True), [], (), LATER) == {}


def test_unsettled_lag_is_per_provider() -> None:
    config = replace(DEFAULT_CONFIG, settlement_lag_ms={"shopify_payments": DAY})
    assert cats(evaluate(order_money(), [], (), SHIPPED + DAY, config)) == {"unsettled"}
    assert evaluate(order_money(source_systems=("pos",)), [], (), SHIPPED + DAY, config) == {}


def test_short_and_over_charge_are_amount_mismatches() -> None:
    short = evaluate(order_money(), paid(2_900), (), SHIPPED + DAY)
    assert cats(short) == {"amount_mismatch"}
    m = short["o-1:amount_mismatch"]
    assert (m["expected"], m["actual"], m["difference"]) == (3_000, 2_900, -100)
    assert m["settlement_ids"] == ["st-1"]
    over = evaluate(order_money(), paid(3_001), (), SHIPPED + DAY)
    assert over["o-1:amount_mismatch"]["difference"] == 1


def test_amount_tolerance() -> None:
    config = replace(DEFAULT_CONFIG, amount_tolerance_minor=100)
    assert evaluate(order_money(), paid(2_900), (), LATER, config) == {}
    assert cats(evaluate(order_money(), paid(2_899), (), LATER, config)) == {"amount_mismatch"}


def _amazon(amount: int, t: int) -> list[SettlementLine]:
    return [
        stl("charge", amount, t, provider="amazon"),
        stl("fee", -(amount * 15 // 100), t, provider="amazon"),
    ]


def test_per_shipment_capture_waits_for_every_shipment_charge() -> None:
    order = order_money(shipment_count=2, source_systems=("amazon",))
    first = _amazon(1_000, SHIPPED + HOUR)
    assert evaluate(order, first, (), SHIPPED + 2 * DAY) == {}
    both = first + _amazon(2_000, SHIPPED + 2 * HOUR)
    assert evaluate(order, both, (), SHIPPED + 2 * DAY) == {}
    # The second charge never came: once the lag after the last shipment is over, it is short.
    found = evaluate(order, first, (), SHIPPED + LAG)
    assert found["o-1:amount_mismatch"]["actual"] == 1_000
    # Not fully shipped yet: nothing to say about a partial charge.
    partial = order_money(shipment_count=1, shipped_at=None, source_systems=("amazon",))
    assert evaluate(partial, first, (), LATER) == {}


def test_duplicate_settlement_explains_the_over_charge() -> None:
    lines = [*paid(), stl("charge", 3_000, SHIPPED + 2 * DAY, settlement_id="st-2")]
    lines.append(stl("fee", lines[1].amount, SHIPPED + 2 * DAY, settlement_id="st-2"))
    found = evaluate(order_money(), lines, (), SHIPPED + 2 * DAY)
    assert cats(found) == {"duplicate_settlement"}
    m = found["o-1:duplicate_settlement"]
    assert (m["expected"], m["actual"], m["difference"]) == (3_000, 6_000, 3_000)
    assert m["settlement_ids"] == ["st-1", "st-2"]
    # The provider refunds the second capture: nothing left to report.
    settled = [*lines, stl("refund", -3_000, SHIPPED + 3 * DAY)]
    assert evaluate(order_money(), settled, (), LATER) == {}


def test_same_line_id_twice_is_not_a_duplicate() -> None:
    charge = stl("charge", 3_000, line_id="sl-same")
    resent = replace(charge, event_time=charge.event_time + DAY)  # the report re-sent
    assert evaluate(order_money(), [charge, resent, *paid()[1:]], (), LATER) == {}


def test_equal_charges_far_apart_are_not_duplicates() -> None:
    lines = [*paid(), *paid(t=SHIPPED + 30 * DAY)]
    assert cats(evaluate(order_money(), lines, (), LATER)) == {"amount_mismatch"}


def test_equal_charges_that_add_up_to_the_total_are_not_duplicates() -> None:
    order = order_money(total=2_000, shipment_count=2, source_systems=("amazon",))
    lines = _amazon(1_000, SHIPPED) + _amazon(1_000, SHIPPED + HOUR)
    assert evaluate(order, lines, (), LATER) == {}


def test_refund_for_units_cancelled_after_capture_is_netted() -> None:
    # Captured 3000, then l2 (1000) cancelled: expected 2000.
    order = order_money(lines=(("l1", 1_000, 2, 0), ("l2", 1_000, 1, 1)))
    assert expected_charge(order) == 2_000
    captured = paid()
    assert evaluate(order, captured, (), LATER)["o-1:amount_mismatch"]["difference"] == 1_000
    refunded = [*captured, stl("refund", -1_000, SHIPPED + 2 * DAY)]
    assert evaluate(order, refunded, (), LATER) == {}
    assert is_reconciled(order, refunded, (), LATER)


def test_charge_on_a_cancelled_order_is_an_over_charge() -> None:
    found = evaluate(order_money(fully_cancelled=True), paid(), (), LATER)
    assert found["o-1:amount_mismatch"]["expected"] == 0


# --- expected charge: cancelled value with its tax / shipping / discount share ---


def test_expected_charge_cancels_tax_and_shipping_share() -> None:
    # l1: 3 x 999, l2: 1 x 1501 -> subtotal 4498; tax 360, shipping 599, total 5457.
    lines = (("l1", 999, 3, 1), ("l2", 1_501, 1, 0))
    order = order_money(total=5_457, lines=lines, tax=360, shipping=599, discounts=0)
    # l1's shares by value 2997/4498: tax 240 (of 360), shipping 399 (of 599); one of three
    # units cancelled takes 80 and 133; so the cancelled value is 999 + 80 + 133.
    assert expected_charge(order) == 5_457 - (999 + 80 + 133)


def test_expected_charge_with_vat_included_does_not_cancel_tax_twice() -> None:
    lines = (("l1", 1_200, 1, 1), ("l2", 1_200, 1, 0))
    order = order_money(
        total=2_400, lines=lines, tax=400, shipping=0, discounts=0, taxes_included=True
    )
    assert expected_charge(order) == 1_200


def test_expected_charge_with_discount() -> None:
    lines = (("l1", 1_000, 1, 1), ("l2", 3_000, 1, 0))
    order = order_money(total=3_600 + 288, lines=lines, tax=288, shipping=0, discounts=400)
    # l1 carries 1/4 of everything: 1000 - 100 discount + 72 tax.
    assert expected_charge(order) == 3_888 - 972


def test_floor_proration_matches_the_fold_convention() -> None:
    lines = (("l1", 999, 3, 1), ("l2", 1_501, 1, 0))
    order = order_money(total=5_457, lines=lines, tax=360, shipping=599, discounts=0)
    config = replace(DEFAULT_CONFIG, proration="floor")
    assert expected_charge(order, config) == 5_457 * (4_498 - 999) // 4_498


_line = st.tuples(st.integers(0, 50_000), st.integers(1, 5))


@given(
    st.lists(_line, min_size=1, max_size=6),
    st.integers(0, 20_000),
    st.integers(0, 2_000),
    st.data(),
)
def test_cancelled_values_of_disjoint_lines_add_up_to_the_total(
    lines: list[tuple[int, int]], tax: int, shipping: int, data: st.DataObject
) -> None:
    subtotal = sum(price * qty for price, qty in lines)
    discounts = data.draw(st.integers(0, subtotal))
    total = subtotal - discounts + tax + shipping
    ids = [f"l{i}" for i in range(len(lines))]

    def expected(cancelled: set[str]) -> int:
        money_lines = tuple(
            (i, price, qty, qty if i in cancelled else 0)
            for i, (price, qty) in zip(ids, lines, strict=True)
        )
        return expected_charge(
            order_money(
                total=total, lines=money_lines, tax=tax, shipping=shipping, discounts=discounts
            ),
            ALLOCATE,
        )

    # Holds for "allocate" proration (shares by money.allocate), not for the default "floor".
    assert expected(set()) == total
    part = set(data.draw(st.lists(st.sampled_from(ids), unique=True)))
    rest = set(ids) - part
    # Cancelling part and cancelling the rest remove exactly the whole total between them:
    # no unit of tax, shipping or discount is lost or counted twice.
    assert (total - expected(part)) + (total - expected(rest)) == total


# --- currencies ---


def test_charge_in_another_currency_is_a_currency_mismatch() -> None:
    order = order_money(currency="EUR")
    lines = [stl("charge", 3_300, currency="USD"), stl("fee", -126, currency="USD")]
    found = evaluate(order, lines, (), LATER)
    assert cats(found) == {"currency_mismatch"}  # not also unsettled or amount_mismatch
    m = found["o-1:currency_mismatch"]
    assert (m["expected"], m["actual"], m["currency"]) == (3_000, 3_300, "EUR")


def test_an_fx_line_covers_the_foreign_currency() -> None:
    order = order_money(currency="EUR")
    lines = [
        stl("charge", 3_300, currency="USD"),
        stl("adjustment", 3_000, currency="EUR", description="FX conversion USD->EUR"),
    ]
    assert evaluate(order, lines, (), LATER) == {}
    # Facts from the fold carry no description: an EUR adjustment in the same settlement.
    bare = [lines[0], replace(lines[1], description=None)]
    assert evaluate(order, bare, (), LATER) == {}
    elsewhere = [lines[0], replace(lines[1], settlement_id="st-9")]
    assert cats(evaluate(order, elsewhere, (), LATER)) == {"currency_mismatch"}


def test_one_settlement_batch_with_several_currencies() -> None:
    eur = order_money(currency="EUR")
    usd = order_money(total=5_000, lines=(("l1", 5_000, 1, 0),))
    batch = [
        stl("charge", 3_000, currency="EUR", order_id="o-1", settlement_id="batch"),
        stl("charge", 5_000, currency="USD", order_id="o-2", settlement_id="batch"),
        stl("fee", -117, currency="EUR", order_id="o-1", settlement_id="batch"),
        stl("fee", -175, currency="USD", order_id="o-2", settlement_id="batch"),
    ]
    by_order = {oid: [ln for ln in batch if ln.order_id == oid] for oid in ("o-1", "o-2")}
    assert evaluate(eur, by_order["o-1"], (), LATER) == {}
    assert evaluate(usd, by_order["o-2"], (), LATER) == {}
    totals = settled_totals(batch)
    assert (totals["EUR"].charges, totals["EUR"].fees) == (3_000, 117)
    assert (totals["USD"].charges, totals["USD"].fees) == (5_000, 175)


# --- fees, chargebacks ---


def test_fee_within_band_tolerance_is_fine_and_outside_is_an_anomaly() -> None:
    order = order_money(total=10_000, lines=(("l1", 10_000, 1, 0),))
    band_fee = 290 + 30
    assert evaluate(order, [stl("charge", 10_000), stl("fee", -(band_fee + 32))], (), LATER) == {}
    found = evaluate(order, [stl("charge", 10_000), stl("fee", -960)], (), LATER)
    assert cats(found) == {"fee_anomaly"}
    m = found["o-1:fee_anomaly"]
    assert (m["expected"], m["actual"], m["provider"]) == (band_fee, 960, "stripe")


def test_a_fee_still_in_transit_is_not_an_anomaly_yet() -> None:
    order = order_money(total=20_000, lines=(("l1", 10_000, 2, 0),), shipment_count=2)
    t = SHIPPED + DAY
    first = [stl("charge", 10_000, t), stl("fee", -320, t)]
    second_charge = stl("charge", 10_000, t + HOUR)
    settle = DEFAULT_CONFIG.fee_settle_ms
    assert evaluate(order, [*first, second_charge], (), t + HOUR) == {}
    # Its fee never shows up: judged once the newest line is fee_settle_ms old.
    late = evaluate(order, [*first, second_charge], (), t + HOUR + settle)
    assert late["o-1:fee_anomaly"]["expected"] == 640
    # Several fee lines per charge (Amazon commission + FBA fee) are judged the same way.
    amazon = order_money(total=10_000, lines=(("l1", 10_000, 1, 0),))
    lines = [
        stl("charge", 10_000, t, provider="amazon"),
        stl("fee", -1_200, t, provider="amazon", description="Commission"),
        stl("fee", -300, t, provider="amazon", description="FBA fee"),
    ]
    assert evaluate(amazon, lines, (), t + settle) == {}


def test_fee_anomaly_clears_when_the_provider_credits_the_excess() -> None:
    order = order_money(total=10_000, lines=(("l1", 10_000, 1, 0),))
    lines = [stl("charge", 10_000), stl("fee", -960)]
    assert cats(evaluate(order, lines, (), LATER)) == {"fee_anomaly"}
    credited = [*lines, stl("fee", 640, SHIPPED + 9 * DAY, description="fee correction")]
    assert evaluate(order, credited, (), LATER) == {}


def test_fee_is_judged_only_with_its_charge_and_a_band() -> None:
    assert evaluate(order_money(first_shipped_at=None), [stl("fee", -999)], (), LATER) == {}
    lines = [stl("charge", 3_000, provider="paypal_like"), stl("fee", -999, provider="paypal_like")]
    assert evaluate(order_money(), lines, (), LATER) == {}


def test_chargeback_is_always_reported() -> None:
    lines = [*paid(), stl("chargeback", -3_000, SHIPPED + 20 * DAY)]
    found = evaluate(order_money(), lines, (), LATER)
    assert cats(found) == {"chargeback"}
    m = found["o-1:chargeback"]
    assert (m["expected"], m["actual"]) == (0, 3_000)
    assert not is_reconciled(order_money(), lines, (), LATER)
    # Dispute won: the chargeback is reversed and the mismatch clears.
    won = [*lines, stl("chargeback", 3_000, SHIPPED + 40 * DAY)]
    assert evaluate(order_money(), won, (), LATER) == {}


# --- orphans ---


def test_orphan_settlement_after_the_grace_period() -> None:
    keyed = stl("charge", 3_000, T0, line_id="sl-k", order_id="o-404")
    unkeyed = stl("charge", 1_000, T0, line_id="sl-u", order_id=None)
    assert evaluate(None, [keyed, unkeyed], (), T0 + 59 * MIN) == {}
    found = evaluate(None, [keyed, unkeyed], (), T0 + HOUR)
    assert sorted(found) == ["sl-k:orphan_settlement", "sl-u:orphan_settlement"]
    m = found["sl-k:orphan_settlement"]
    assert (m["order_id"], m["expected"], m["actual"]) == ("o-404", 0, 3_000)
    assert found["sl-u:orphan_settlement"]["order_id"] is None
    # The order shows up: judged as an order now, no orphan.
    assert evaluate(order_money(), paid(), (), LATER) == {}


# --- refunds ---


def test_partial_refund_settled_as_promised() -> None:
    lines = [*paid(), stl("refund", -1_000, SHIPPED + 11 * DAY)]
    refunds = [refund(1_000)]
    assert evaluate(order_money(), lines, refunds, LATER) == {}
    assert is_reconciled(order_money(), lines, refunds, LATER)


def test_missing_refund_after_the_refund_lag() -> None:
    refunds = [refund(1_000, refunded_at=SHIPPED + 10 * DAY)]
    due = SHIPPED + 10 * DAY + LAG
    assert evaluate(order_money(), paid(), refunds, due - 1) == {}
    found = evaluate(order_money(), paid(), refunds, due)
    assert cats(found) == {"missing_refund"}
    assert found["o-1:missing_refund"]["expected"] == 1_000
    settled = [*paid(), stl("refund", -1_000, due + DAY)]
    assert evaluate(order_money(), settled, refunds, LATER) == {}


def test_approved_but_not_yet_refunded_is_not_missing() -> None:
    refunds = [refund(1_000, refunded_at=None)]
    assert evaluate(order_money(), paid(), refunds, LATER) == {}
    assert not is_reconciled(order_money(), paid(), refunds, LATER)
    # ...and a refund settled for it is not "without return".
    early = [*paid(), stl("refund", -1_000, SHIPPED + 9 * DAY)]
    assert evaluate(order_money(), early, refunds, LATER) == {}


def test_over_refund_is_a_refund_mismatch_at_once() -> None:
    lines = [*paid(), stl("refund", -1_200, SHIPPED + 11 * DAY)]
    found = evaluate(order_money(), lines, [refund(1_000)], SHIPPED + 11 * DAY)
    assert cats(found) == {"refund_mismatch"}
    m = found["o-1:refund_mismatch"]
    assert (m["expected"], m["actual"], m["difference"]) == (1_000, 1_200, 200)


def test_short_refund_waits_for_the_refund_lag() -> None:
    refunded_at = SHIPPED + 10 * DAY
    lines = [*paid(), stl("refund", -800, refunded_at + DAY)]
    refunds = [refund(1_000, refunded_at=refunded_at)]
    assert evaluate(order_money(), lines, refunds, refunded_at + 2 * DAY) == {}
    found = evaluate(order_money(), lines, refunds, refunded_at + LAG)
    assert cats(found) == {"refund_mismatch"}
    assert found["o-1:refund_mismatch"]["difference"] == -200


def test_two_partial_refunds_settling_one_by_one() -> None:
    first_at, second_at = SHIPPED + 10 * DAY, SHIPPED + 20 * DAY
    refunds = [refund(500, first_at, "r-1"), refund(700, second_at, "r-2")]
    one = [*paid(), stl("refund", -500, first_at + DAY)]
    assert evaluate(order_money(), one, refunds, second_at + DAY) == {}
    found = evaluate(order_money(), one, refunds, second_at + LAG)
    m = found["o-1:refund_mismatch"]
    assert (m["expected"], m["actual"]) == (1_200, 500)
    both = [*one, stl("refund", -700, second_at + DAY)]
    assert evaluate(order_money(), both, refunds, LATER) == {}


def test_refund_without_return_after_the_grace() -> None:
    t = SHIPPED + 5 * DAY
    lines = [*paid(), stl("refund", -400, t)]
    assert evaluate(order_money(), lines, [], t + 30 * MIN) == {}
    found = evaluate(order_money(), lines, [], t + HOUR)
    assert cats(found) == {"refund_without_return"}
    m = found["o-1:refund_without_return"]
    assert (m["expected"], m["actual"]) == (0, 400)
    # The return it belongs to arrives late: explained.
    assert evaluate(order_money(), lines, [refund(400, t)], LATER) == {}
    # A return whose amount is not known yet may explain it too.
    assert evaluate(order_money(), lines, [refund(None, None)], LATER) == {}


def test_duplicate_refund() -> None:
    refunded_at = SHIPPED + 10 * DAY
    lines = [
        *paid(),
        stl("refund", -1_000, refunded_at + DAY, settlement_id="st-2"),
        stl("refund", -1_000, refunded_at + 2 * DAY, settlement_id="st-3"),
    ]
    found = evaluate(order_money(), lines, [refund(1_000, refunded_at)], LATER)
    assert cats(found) == {"duplicate_settlement"}
    assert found["o-1:duplicate_settlement"]["actual"] == 2_000


def test_refund_in_another_return_currency_is_ignored_for_expectations() -> None:
    foreign = ReturnRefund("r-1", 1_000, "EUR", SHIPPED, SHIPPED + DAY)
    assert evaluate(order_money(), paid(), [foreign], LATER) == {}


def test_default_lag_applies_to_unknown_providers() -> None:
    # Every category is reached by generated traffic: tests/unit/test_order_pipeline.py.
    assert ReconciliationConfig().lag_for(None) == 5 * DAY
