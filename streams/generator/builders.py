"""Complete Avro-shaped record dicts (every field present, as the serde decodes them)."""

from __future__ import annotations

from typing import Any

from tables.records import OrderLine, OrderTotals, ReturnLine, ShipmentLine


def envelope(event_id: str, event_time: int, source_system: str, correlation_id: str,
             order_id: str | None) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_time": event_time,
        "source_system": source_system,
        "correlation_id": correlation_id,
        "order_id": order_id,
    }


def order_line(line_id: str, sku: str, title: str | None, quantity: int, unit_price: int, *,
               quantity_affected: int | None = None, substituted_sku: str | None = None,
               substituted_unit_price: int | None = None) -> OrderLine:
    return {
        "line_id": line_id,
        "sku": sku,
        "title": title,
        "quantity": quantity,
        "unit_price": unit_price,
        "line_discount": 0,
        "quantity_affected": quantity_affected,
        "substituted_sku": substituted_sku,
        "substituted_unit_price": substituted_unit_price,
    }


def order_totals(subtotal: int, discounts: int, tax: int, shipping: int, total: int,
                 taxes_included: bool) -> OrderTotals:
    return {"subtotal": subtotal, "discounts": discounts, "tax": tax, "shipping": shipping,
            "total": total, "taxes_included": taxes_included}


def order_event(head: dict[str, Any], type_: str, *, channel: str, customer_ref: str | None,
                external_order_ref: str | None, currency: str, lines: list[OrderLine],
                totals: OrderTotals | None = None, promised_ship_by: int | None = None,
                promised_deliver_by: int | None = None, service_level: str | None = None,
                ship_to_country: str | None = None, reason: str | None = None) -> dict[str, Any]:
    return {
        **head,
        "type": type_,
        "channel": channel,
        "customer_ref": customer_ref,
        "external_order_ref": external_order_ref,
        "currency": currency,
        "lines": lines,
        "totals": totals,
        "promised_ship_by": promised_ship_by,
        "promised_deliver_by": promised_deliver_by,
        "service_level": service_level,
        "ship_to_country": ship_to_country,
        "reason": reason,
    }


def shipment_event(head: dict[str, Any], shipment_id: str, status: str,
                   lines: list[ShipmentLine], *, warehouse: str | None, carrier: str | None,
                   service_level: str | None, tracking_number: str | None,
                   estimated_delivery_at: int | None = None,
                   exception_reason: str | None = None) -> dict[str, Any]:
    return {
        **head,
        "shipment_id": shipment_id,
        "status": status,
        "lines": lines,
        "warehouse": warehouse,
        "carrier": carrier,
        "service_level": service_level,
        "tracking_number": tracking_number,
        "estimated_delivery_at": estimated_delivery_at,
        "exception_reason": exception_reason,
    }


def return_event(head: dict[str, Any], return_id: str, status: str, lines: list[ReturnLine], *,
                 reason: str | None, refund_amount: int | None, currency: str | None,
                 warehouse: str | None) -> dict[str, Any]:
    return {
        **head,
        "return_id": return_id,
        "status": status,
        "lines": lines,
        "reason": reason,
        "refund_amount": refund_amount,
        "currency": currency,
        "warehouse": warehouse,
    }


def settlement_event(head: dict[str, Any], *, settlement_id: str, settlement_line_id: str,
                     provider: str, transaction_type: str, amount: int, currency: str,
                     posted_time: int, period: tuple[int, int] | None,
                     external_order_ref: str | None, description: str | None) -> dict[str, Any]:
    return {
        **head,
        "settlement_id": settlement_id,
        "settlement_line_id": settlement_line_id,
        "provider": provider,
        "transaction_type": transaction_type,
        "amount": amount,
        "currency": currency,
        "posted_time": posted_time,
        "settlement_period_start": period[0] if period else None,
        "settlement_period_end": period[1] if period else None,
        "external_order_ref": external_order_ref,
        "description": description,
    }
