"""TypedDicts for every Avro record in ``schemas/``: the shapes our serde decodes to.

The .avsc files are the source of truth; ``tests/unit/test_records.py`` fails the build when a
TypedDict here drifts from its schema (field names, nullability, base types, enum symbols).
Timestamps are ``int`` epoch millis (the serde strips logicalType), enums are ``str`` literals,
money is ``int`` minor units of the record's ISO-4217 ``currency``.
"""

from __future__ import annotations

from typing import Literal, TypedDict

# --- enums (every enum ends with "unknown", its Avro default, so symbols can be added) ---

OrderEventType = Literal[
    "placed", "updated", "cancelled", "line_cancelled", "backordered", "substituted", "unknown"
]
ShipmentStatus = Literal[
    "created",
    "allocated",
    "picked",
    "packed",
    "shipped",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "exception",
    "cancelled",
    "unknown",
]
ReturnStatus = Literal[
    "requested", "approved", "rejected", "received", "inspected", "refunded", "unknown"
]
SettlementProvider = Literal["amazon", "shopify_payments", "stripe", "paypal", "unknown"]
SettlementTransactionType = Literal[
    "charge", "refund", "fee", "adjustment", "chargeback", "reserve", "unknown"
]
FulfillmentStatus = Literal[
    "accepted",
    "backordered",
    "allocated",
    "partially_allocated",
    "picked",
    "packed",
    "partially_shipped",
    "shipped",
    "partially_delivered",
    "delivered",
    "cancelled",
    "partially_cancelled",
    "unknown",
]
ReturnsStatus = Literal[
    "none", "requested", "partially_returned", "returned", "rejected", "unknown"
]
FinancialStatus = Literal["unsettled", "settled", "partially_refunded", "refunded", "unknown"]
MismatchStatus = Literal["open", "resolved", "unknown"]
AlertSeverity = Literal["info", "warning", "critical", "unknown"]
AlertState = Literal["firing", "resolved", "unknown"]


# --- input events ---


class OrderLine(TypedDict):
    line_id: str
    sku: str
    title: str | None
    quantity: int
    unit_price: int
    line_discount: int
    quantity_affected: int | None
    substituted_sku: str | None
    substituted_unit_price: int | None


class OrderTotals(TypedDict):
    subtotal: int
    discounts: int
    tax: int
    shipping: int
    total: int
    taxes_included: bool


class OrderEvent(TypedDict):
    event_id: str
    event_time: int
    source_system: str
    correlation_id: str
    order_id: str
    type: OrderEventType
    channel: str
    customer_ref: str | None
    external_order_ref: str | None
    currency: str
    lines: list[OrderLine]
    totals: OrderTotals | None
    promised_ship_by: int | None
    promised_deliver_by: int | None
    service_level: str | None
    ship_to_country: str | None
    reason: str | None


class ShipmentLine(TypedDict):
    line_id: str
    sku: str | None
    quantity: int


class ShipmentEvent(TypedDict):
    event_id: str
    event_time: int
    source_system: str
    correlation_id: str
    order_id: str
    shipment_id: str
    status: ShipmentStatus
    lines: list[ShipmentLine]
    warehouse: str | None
    carrier: str | None
    service_level: str | None
    tracking_number: str | None
    estimated_delivery_at: int | None
    exception_reason: str | None


class ReturnLine(TypedDict):
    line_id: str
    sku: str | None
    quantity: int
    reason: str | None
    condition: str | None


class ReturnEvent(TypedDict):
    event_id: str
    event_time: int
    source_system: str
    correlation_id: str
    order_id: str
    return_id: str
    status: ReturnStatus
    lines: list[ReturnLine]
    reason: str | None
    refund_amount: int | None
    currency: str | None
    warehouse: str | None


class SettlementEvent(TypedDict):
    event_id: str
    event_time: int
    source_system: str
    correlation_id: str
    order_id: str | None
    settlement_id: str
    settlement_line_id: str
    provider: SettlementProvider
    transaction_type: SettlementTransactionType
    amount: int
    currency: str
    posted_time: int
    settlement_period_start: int | None
    settlement_period_end: int | None
    external_order_ref: str | None
    description: str | None


# --- derived records ---


class FulfillmentLine(TypedDict):
    line_id: str
    sku: str | None
    unit_price: int
    ordered: int
    cancelled: int
    backordered: int
    allocated: int
    picked: int
    packed: int
    shipped: int
    delivered: int
    returned: int
    refunded: int
    substituted_sku: str | None
    substituted: int


class ShipmentExceptionRef(TypedDict):
    shipment_id: str
    reason: str | None
    since: int


class FulfillmentState(TypedDict):
    order_id: str
    version: int
    caused_by_event_id: str
    caused_by_source_system: str
    correlation_id: str
    channel: str
    customer_ref: str | None
    external_order_ref: str | None
    currency: str
    lines: list[FulfillmentLine]
    fulfillment_status: FulfillmentStatus
    returns_status: ReturnsStatus
    financial_status: FinancialStatus
    reconciled: bool
    split: bool
    shipment_count: int
    open_exceptions: list[ShipmentExceptionRef]
    flags: list[str]
    accepted_at: int | None
    allocated_at: int | None
    first_shipped_at: int | None
    shipped_at: int | None
    delivered_at: int | None
    cancelled_at: int | None
    returned_at: int | None
    refunded_at: int | None
    promised_ship_by: int | None
    promised_deliver_by: int | None
    order_total: int
    expected_charge: int
    charged_amount: int
    refunded_amount: int
    fee_amount: int
    chargeback_amount: int
    expected_refund: int
    settlement_ids: list[str]
    warehouses: list[str]
    carriers: list[str]
    tracking_numbers: list[str]
    source_systems: list[str]
    updated_at: int


class ReconciliationMismatch(TypedDict):
    mismatch_id: str
    order_id: str | None
    category: str
    status: MismatchStatus
    expected: int
    actual: int
    difference: int
    currency: str
    provider: str | None
    settlement_ids: list[str]
    correlation_id: str
    detected_at: int
    resolved_at: int | None


class SlaAlert(TypedDict):
    fingerprint: str
    rule: str
    severity: AlertSeverity
    state: AlertState
    starts_at: int
    ends_at: int | None
    summary: str
    description: str
    labels: dict[str, str]
    order_id: str | None
    correlation_id: str | None
    runbook_url: str


class WindowedMetric(TypedDict):
    name: str
    group_key: str
    labels: dict[str, str]
    window_start: int
    window_end: int
    count: int
    sum: int
    value: float
    p50: float | None
    p95: float | None
    p99: float | None
    late_events: int
    unit: str | None


class DeadLetterHeader(TypedDict):
    key: str
    value: bytes | None


class DeadLetter(TypedDict):
    original_topic: str
    original_partition: int
    original_offset: int
    original_timestamp: int | None
    key: bytes | None
    value: bytes | None
    headers: list[DeadLetterHeader]
    error_class: str
    error_message: str
    stage: str
    failed_at: int
    worker_id: str | None


# Record name (as in the .avsc, nested records included) -> TypedDict.
RECORD_TYPES: dict[str, type] = {
    "OrderEvent": OrderEvent,
    "OrderLine": OrderLine,
    "OrderTotals": OrderTotals,
    "ShipmentEvent": ShipmentEvent,
    "ShipmentLine": ShipmentLine,
    "ReturnEvent": ReturnEvent,
    "ReturnLine": ReturnLine,
    "SettlementEvent": SettlementEvent,
    "FulfillmentState": FulfillmentState,
    "FulfillmentLine": FulfillmentLine,
    "ShipmentExceptionRef": ShipmentExceptionRef,
    "ReconciliationMismatch": ReconciliationMismatch,
    "SlaAlert": SlaAlert,
    "WindowedMetric": WindowedMetric,
    "DeadLetter": DeadLetter,
    "DeadLetterHeader": DeadLetterHeader,
}
