"""The operations console in a real headless Chromium against a real worker: what the page
shows equals what the API answers (overview, order, alerts, mismatches, metric windows), a
firing alert opens its rendered runbook and can be silenced and un-silenced from the page, and
an endpoint that is not available is said so on the page.

Screenshots of every section go to tests/artifacts/console/.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from typing import Any

import pytest

from tests.console.conftest import Stack, screenshot

pytestmark = pytest.mark.broker
HOUR_MS = 3_600_000
WAIT_MS = 15_000  # the page refreshes every 5 s; three refreshes


def _expect() -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    return expect


def _open(page: Any, stack: Stack, section: str) -> None:
    page.goto(f"{stack.url}/#{section}")
    _expect()(page.locator(f"section#{section.split('/')[0]}")).to_be_visible()


def test_overview_numbers_are_the_apis(page: Any, stack: Stack) -> None:
    expect = _expect()
    stable = ("orders_by_status", "orders_total", "consumer_lag", "dead_letters",
              "firing_alerts")
    overview = stack.settled(lambda: {k: stack.body("/overview")[k] for k in stable})
    assert overview["orders_total"] > 0 and overview["firing_alerts"] > 0
    _open(page, stack, "overview")
    for field in ("orders_total", "consumer_lag", "dead_letters", "firing_alerts"):
        value = overview[field]
        want = str(value) if isinstance(value, int) else re.compile(".")
        expect(page.locator(f'#overview [data-field="{field}"]')).to_have_attribute(
            "data-value", want)
    shown = page.locator("#orders-by-status tbody tr")
    expect(shown).to_have_count(len(overview["orders_by_status"]))
    for status, count in overview["orders_by_status"].items():
        expect(page.locator(f'#orders-by-status tr[data-status="{status}"] td.num')
               ).to_have_attribute("data-value", str(count))
    total = page.locator('#overview [data-field="orders_total"]')
    expect(total).to_have_text(f"{overview['orders_total']:,}")
    expect(page.locator("#tab-firing")).to_have_text(str(overview["firing_alerts"]))
    expect(page.locator('#overview [data-field="events_per_second"]')).not_to_have_text("\u2013")
    screenshot(page, "overview")


def test_order_lookup_shows_lines_and_timeline(page: Any, stack: Stack) -> None:
    expect = _expect()
    truth = stack.generated.truth.orders
    # An order that went through several source systems and has more than one line.
    order_id = next(o for o, t in sorted(truth.items())
                    if stack.body(f"/orders/{o}/timeline")["events"]
                    and len({e["source_system"] for e in stack.body(
                        f"/orders/{o}/timeline")["events"]}) >= 3
                    and len(stack.body(f"/orders/{o}")["lines"]) >= 2)
    state = stack.body(f"/orders/{order_id}")
    events = stack.body(f"/orders/{order_id}/timeline")["events"]
    _open(page, stack, "orders")
    page.get_by_label("Order id or correlation id").fill(order_id)
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_role("heading", name=f"Order {order_id}")).to_be_visible()
    expect(page.locator(".statuses")).to_contain_text(
        f"fulfillment: {truth[order_id]['fulfillment_status']}")
    lines = page.locator("#order-lines tbody tr")
    expect(lines).to_have_count(len(state["lines"]))
    for line in state["lines"]:
        row = page.locator(f'#order-lines tr[data-line-id="{line["line_id"]}"] td.num')
        # unit price, then ordered .. substituted in the page's column order
        wanted = [line["unit_price"]] + [line[c] for c in (
            "ordered", "cancelled", "backordered", "allocated", "picked", "packed", "shipped",
            "delivered", "returned", "refunded", "substituted")]
        assert [int(v) for v in row.evaluate_all(
            "cells => cells.map(c => c.dataset.value)")] == wanted
    timeline = page.locator("#order-timeline tbody tr")
    expect(timeline).to_have_count(len(events))
    assert timeline.evaluate_all("rows => rows.map(r => r.dataset.eventId)") == [
        e["event_id"] for e in events]
    lanes = {e["source_system"] for e in events}
    expect(page.locator("#timeline-chart svg circle.event")).to_have_count(len(events))
    for source in lanes:
        expect(page.locator("#timeline-chart svg text", has_text=re.compile(
            f"^{re.escape(source)}$"))).to_have_count(1)
    screenshot(page, "order")

    # A correlation id leads to its order through the alerts and mismatches it raised.
    alerts = stack.body("/alerts", state="firing", limit=500)["alerts"]
    mismatches = stack.body("/mismatches", limit=10_000)["mismatches"]
    owners: dict[str, set[str]] = defaultdict(set)
    for record in (*alerts, *mismatches):
        if record.get("correlation_id") and record.get("order_id"):
            owners[record["correlation_id"]].add(record["order_id"])
    correlation, orders = next((c, o) for c, o in sorted(owners.items())
                               if len(o) == 1 and c not in truth)
    page.get_by_label("Order id or correlation id").fill(correlation)
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_role("heading", name=f"Order {next(iter(orders))}")).to_be_visible()
    expect(page.locator("#orders [data-notice]")).to_contain_text(correlation)

    page.get_by_label("Order id or correlation id").fill("no-such-order-or-correlation")
    page.get_by_role("button", name="Look up").click()
    expect(page.locator("#orders [data-notice]")).to_contain_text("No order no-such-order")
    expect(page.locator("#order-result")).to_be_empty()


def test_firing_alert_runbook_and_silence(page: Any, stack: Stack) -> None:
    expect = _expect()
    firing = stack.settled(lambda: stack.body("/alerts", state="firing", limit=500))
    assert firing["count"] > 0
    _open(page, stack, "alerts")
    rows = page.locator("#alerts-table tbody tr")
    expect(rows).to_have_count(firing["count"])
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.fingerprint)") == [
        a["fingerprint"] for a in firing["alerts"]]
    alert = next(a for a in firing["alerts"] if a["order_id"] and not a["silenced_by"])
    row = page.locator(f'#alerts-table tr[data-fingerprint="{alert["fingerprint"]}"]')
    expect(row.locator(".sev")).to_have_text(alert["severity"])
    for key, value in alert["labels"].items():
        expect(row.locator(".chip", has_text=f"{key}={value}")).to_have_count(1)
    expect(row).to_contain_text("firing for")
    screenshot(page, "alerts")

    # The runbook link opens the Markdown rendered to HTML on the server.
    row.get_by_role("link", name=f"Runbook for {alert['rule']}").click()
    expect(page).to_have_url(re.compile(rf"/runbooks/{alert['rule']}$"))
    expect(page.locator("main#runbook h1")).to_have_text(alert["rule"])
    expect(page.get_by_role("heading", name="Diagnose")).to_be_visible()
    assert page.locator("main#runbook li").count() > 2
    assert page.locator("main#runbook script").count() == 0
    screenshot(page, "runbook")
    page.go_back()

    # Silence it from the page: the alert shows the silence, the API agrees.
    row = page.locator(f'#alerts-table tr[data-fingerprint="{alert["fingerprint"]}"]')
    row.get_by_role("button", name=re.compile(r"^Silence ")).click()
    dialog = page.get_by_role("dialog", name="Silence alert")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#silence-matchers")).to_have_text(
        f"rule={alert['rule']}, order_id={alert['order_id']}")
    dialog.get_by_label("Your name").fill("on-call")
    dialog.get_by_label("Comment").fill("console test: carrier outage")
    dialog.get_by_role("button", name="Silence").click()
    expect(dialog).to_be_hidden()
    silenced = row.locator("[data-silenced-by]")
    expect(silenced).to_be_visible()
    silence_id = silenced.get_attribute("data-silenced-by")
    after = {a["fingerprint"]: a for a in stack.body("/alerts", state="firing",
                                                     limit=500)["alerts"]}
    assert after[alert["fingerprint"]]["silenced_by"] == silence_id
    active = {s["silence_id"]: s for s in stack.body("/silences")["silences"]}
    assert active[silence_id]["created_by"] == "on-call"
    expect(page.locator(f'#silences-table tr[data-silence-id="{silence_id}"]')).to_contain_text(
        f"rule={alert['rule']}")
    screenshot(page, "alerts-silenced")

    # And expire it again: the alert is back to a Silence button.
    page.get_by_role("button", name=f"Expire silence {silence_id}").click()
    expect(row.get_by_role("button", name=re.compile(r"^Silence "))).to_be_visible()
    assert silence_id not in {s["silence_id"] for s in stack.body("/silences")["silences"]}


def _rows(page: Any) -> list[dict[str, Any]]:
    return page.locator("#mismatch-table tbody tr[data-mismatch-id]").evaluate_all(
        """rows => rows.map(r => ({id: r.dataset.mismatchId,
              amounts: [...r.querySelectorAll('td.num')].map(c => Number(c.dataset.value)),
              texts: [...r.querySelectorAll('td.num')].map(c => c.textContent)}))""")


def _minor_text(minor: int, currency: str) -> str:
    # Every currency the generator uses has two decimals (format.js knows the others).
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{currency} {sign}{whole:,}.{cents:02d}"


def test_reconciliation_table_is_the_apis(page: Any, stack: Stack) -> None:
    expect = _expect()
    answer = stack.settled(lambda: stack.body("/mismatches", status="open", limit=10_000))
    assert answer["matched"] > 0
    _open(page, stack, "reconciliation")
    expect(page.locator("#mismatch-table tbody tr[data-mismatch-id]")).to_have_count(
        min(300, answer["matched"]))
    shown = _rows(page)
    assert [r["id"] for r in shown] == [m["mismatch_id"] for m in answer["mismatches"][:300]]
    for row, m in zip(shown, answer["mismatches"], strict=False):
        assert row["amounts"] == [m["expected"], m["actual"], m["difference"]]
        assert row["texts"][2] == _minor_text(m["difference"], m["currency"])
    categories = page.locator("#mismatch-categories tbody tr")
    expect(categories).to_have_count(sum(len(c) for c in answer["totals"].values()))
    for currency, by_category in answer["totals"].items():
        for category, difference in by_category.items():
            expect(page.locator(f'#mismatch-categories tr[data-category="{category}"]'
                                f'[data-currency="{currency}"] td.num').last
                   ).to_have_attribute("data-value", str(difference))
    screenshot(page, "reconciliation")

    # Filtering by provider and by status asks the API the same question.
    provider = sorted({m["provider"] for m in answer["mismatches"] if m["provider"]})[0]
    page.get_by_label("Provider", exact=True).select_option(provider)
    narrowed = stack.body("/mismatches", status="open", provider=provider, limit=10_000)
    expect(page.locator("#mismatch-table tbody tr[data-mismatch-id]")).to_have_count(
        min(300, narrowed["matched"]))
    assert [r["id"] for r in _rows(page)] == [
        m["mismatch_id"] for m in narrowed["mismatches"][:300]]
    page.get_by_label("Status", exact=True).select_option("")
    every = stack.body("/mismatches", provider=provider, limit=10_000)
    expect(page.locator("#mismatch-summary")).to_contain_text(f"of {every['matched']} matching")
    assert [r["id"] for r in _rows(page)] == [m["mismatch_id"] for m in every["mismatches"][:300]]


def test_money_uses_the_currencys_exponent(page: Any, stack: Stack) -> None:
    _open(page, stack, "reconciliation")
    formatted = page.evaluate("""async () => {
        const f = await import('/console/static/format.js');
        return [f.money(123456, 'JPY'), f.money(-125, 'KWD'), f.money(5, 'EUR'),
                f.money(-123456789, 'USD'), f.money(0, 'BHD'), f.money(7, 'CLP')];
    }""")
    assert formatted == ["JPY 123,456", "KWD -0.125", "EUR 0.05", "USD -1,234,567.89",
                         "BHD 0.000", "CLP 7"]


def _hourly(stack: Stack, name: str) -> list[dict[str, Any]]:
    return sorted((w for w in stack.body("/metrics/windows", name=name)["windows"]
                   if w["window_end"] - w["window_start"] == HOUR_MS),
                  key=lambda w: w["window_start"])


def _charted_by_api(stack: Stack) -> dict[str, Any]:
    """What the charts must show for the windows the API holds now."""
    overall = [w for w in _hourly(stack, "order_to_ship_ms") if w["group_key"] == ""][-240:]
    rates: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for w in _hourly(stack, "shipment_exception_rate"):
        rate = rates[w["labels"].get("warehouse", w["group_key"])]
        rate[0] += w["sum"]
        rate[1] += w["count"]
    return {
        "latency": sorted(w[p] for p in ("p50", "p95", "p99") for w in overall
                          if w[p] is not None),
        "exception_rates": {k: round(exc / ships, 9) for k, (exc, ships) in rates.items()
                            if ships},
    }


def _charted_on_page(page: Any) -> dict[str, Any]:
    bars = page.locator("#exceptions-chart svg rect.point").evaluate_all(
        "bs => bs.map(b => [b.dataset.label, Number(b.dataset.value)])")
    return {
        "latency": sorted(page.locator("#latency-chart svg circle.point").evaluate_all(
            "cs => cs.map(c => Number(c.dataset.value))")),
        "exception_rates": {label: round(value, 9) for label, value in bars},
    }


def test_metrics_charts_draw_the_windows(page: Any, stack: Stack) -> None:
    expect = _expect()
    first = stack.settled(lambda: _charted_by_api(stack)["latency"])
    assert first, "no closed order-to-ship windows to chart"
    _open(page, stack, "metrics")
    expect(page.locator("#latency-chart svg path.series")).to_have_count(3)
    # The page refreshes every 5 s; windows may still be published meanwhile: the two agree
    # on some refresh.
    deadline = time.monotonic() + 30
    while (shown := _charted_on_page(page)) != (wanted := _charted_by_api(stack)):
        assert time.monotonic() < deadline, (shown, wanted)
        time.sleep(1.0)
    assert shown["latency"] and shown["exception_rates"]
    expect(page.locator("#latency-chart svg")).to_have_attribute(
        "data-points", str(len(shown["latency"])))
    expect(page.locator("#throughput-chart svg path.series")).to_have_count(2)
    assert page.locator("#throughput-chart svg circle.point").count() > 0
    screenshot(page, "metrics")


def test_an_unavailable_endpoint_is_said_on_the_page(page: Any, stack: Stack) -> None:
    """A worker still catching up answers 503: the section says so instead of showing stale
    or empty numbers (the browser is handed that 503 for /overview)."""
    expect = _expect()
    body = '{"error": {"status": 503, "message": "catching up: reading the topics"}}'
    page.route("**/overview", lambda route: route.fulfill(
        status=503, body=body, content_type="application/json"))
    _open(page, stack, "overview")
    box = page.locator("#overview [data-notice]")
    expect(box).to_be_visible()
    expect(box).to_contain_text("503")
    expect(box).to_contain_text("catching up")
    page.unroute("**/overview")
    expect(box).to_be_hidden()  # the next refresh finds it again
