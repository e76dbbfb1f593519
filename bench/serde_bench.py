"""Serde throughput: our WireDecoder/WireEncoder next to raw fastavro on the same records.

    /work/main/.venv/bin/python bench/serde_bench.py [--records 50000] [--repeat 5]

Raw fastavro gets the same parsed schema (logicalType stripped) and only the Avro body, so the
ratio is the cost of our framing, schema-id lookup and error checks. Schema ids come from an
in-process schema source: no registry or broker needed. Target: ratio >= 0.8.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastavro import schemaless_reader, schemaless_writer

from streams.schema_source import InMemorySchemaSource
from streams.serde import WireDecoder, WireEncoder, parse_for_io
from tables.schema_files import load_schema_text

T0 = 1_763_900_000_000
SOURCES = ["shopify", "amazon", "pos-berlin", "magento"]
CHANNELS = ["web", "marketplace", "pos", "app"]
CARRIERS = ["ups", "dhl", "fedex", "gls", None]


def order(rng: random.Random, i: int) -> dict[str, Any]:
    lines = []
    for n in range(rng.randint(1, 5)):
        qty, price = rng.randint(1, 4), rng.randint(199, 19_999)
        lines.append({"line_id": f"l{n + 1}", "sku": f"SKU-{rng.randint(1, 50_000):06d}",
                      "title": rng.choice(["Mug", "T-shirt, blue, M", "Espresso beans 1kg", None]),
                      "quantity": qty, "unit_price": price,
                      "line_discount": rng.choice([0, 0, 100]),
                      "quantity_affected": None, "substituted_sku": None,
                      "substituted_unit_price": None})
    subtotal = sum(ln["quantity"] * ln["unit_price"] for ln in lines)
    tax = subtotal * 19 // 100
    return {
        "event_id": f"evt-{i:08d}-{rng.getrandbits(32):08x}", "event_time": T0 + i * 1_000,
        "source_system": rng.choice(SOURCES), "correlation_id": f"corr-{rng.getrandbits(48):012x}",
        "order_id": f"o-{i // 3:07d}", "type": rng.choice(["placed", "updated", "cancelled"]),
        "channel": rng.choice(CHANNELS), "customer_ref": f"cust-{rng.randint(1, 10**6)}",
        "external_order_ref": f"#{100_000 + i}", "currency": "EUR", "lines": lines,
        "totals": {"subtotal": subtotal, "discounts": 0, "tax": tax, "shipping": 499,
                   "total": subtotal + tax + 499, "taxes_included": False},
        "promised_ship_by": T0 + i * 1_000 + 86_400_000, "promised_deliver_by": None,
        "service_level": rng.choice(["standard", "express", None]), "ship_to_country": "DE",
        "reason": None,
    }


def shipment(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "event_id": f"shp-{i:08d}-{rng.getrandbits(32):08x}", "event_time": T0 + i * 1_000,
        "source_system": "wms-east", "correlation_id": f"corr-{rng.getrandbits(48):012x}",
        "order_id": f"o-{i // 3:07d}", "shipment_id": f"s-{i:07d}",
        "status": rng.choice(["allocated", "picked", "packed", "shipped", "delivered"]),
        "lines": [{"line_id": f"l{n + 1}", "sku": f"SKU-{rng.randint(1, 50_000):06d}",
                   "quantity": rng.randint(1, 4)} for n in range(rng.randint(1, 4))],
        "warehouse": "wms-east", "carrier": rng.choice(CARRIERS), "service_level": "ground",
        "tracking_number": f"1Z{rng.getrandbits(40):010X}",
        "estimated_delivery_at": rng.choice([None, T0 + i * 1_000 + 2 * 86_400_000]),
        "exception_reason": None,
    }


def best_of_pair(raw: Callable[[], None], ours: Callable[[], None],
                 repeat: int) -> tuple[float, float]:
    """Best time of each, runs interleaved so machine noise hits both sides alike."""
    raw_t, ours_t = float("inf"), float("inf")
    for _ in range(repeat):
        for fn, which in ((raw, 0), (ours, 1)):
            start = time.perf_counter()
            fn()
            took = time.perf_counter() - start
            if which == 0:
                raw_t = min(raw_t, took)
            else:
                ours_t = min(ours_t, took)
    return raw_t, ours_t


def bench_record(name: str, records: list[dict[str, Any]], repeat: int) -> list[tuple[str, ...]]:
    source = InMemorySchemaSource()
    enc = WireEncoder(source, f"bench-{name}-value", load_schema_text(name))
    dec = WireDecoder.for_record(source, name)
    parsed = parse_for_io(load_schema_text(name))  # what raw fastavro gets: the same schema
    wire = [enc.encode(r) for r in records]
    bodies = [w[5:] for w in wire]
    dec.decode(wire[0])  # warm the schema cache (one fetch, outside the timing)

    def raw_decode() -> None:
        for b in bodies:
            schemaless_reader(BytesIO(b), parsed)

    def our_decode() -> None:
        decode = dec.decode
        for w in wire:
            decode(w)

    def raw_encode() -> None:
        for r in records:
            fo = BytesIO()
            schemaless_writer(fo, parsed, r)
            fo.getvalue()

    def our_encode() -> None:
        encode = enc.encode
        for r in records:
            encode(r)

    n = len(records)
    rows = []
    for op, raw, ours in (("decode", raw_decode, our_decode), ("encode", raw_encode, our_encode)):
        raw_t, ours_t = best_of_pair(raw, ours, repeat)
        raw_rate, our_rate = n / raw_t, n / ours_t
        rows.append((name, op, f"{raw_rate:,.0f}", f"{our_rate:,.0f}",
                     f"{our_rate / raw_rate:.2f}"))
    assert source.fetches == 1 and source.registrations == 1
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000, help="records per type")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (best)")
    args = parser.parse_args()
    rng = random.Random(42)
    orders = [order(rng, i) for i in range(args.records)]
    shipments = [shipment(rng, i) for i in range(args.records)]
    rows = bench_record("OrderEvent", orders, args.repeat)
    rows += bench_record("ShipmentEvent", shipments, args.repeat)
    header = ("record", "op", "raw fastavro rec/s", "ours rec/s", "ratio")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"{args.records} records per type, best of {args.repeat} interleaved runs; "
          f"python {sys.version.split()[0]}")
    for r in [header, *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True)))
    worst = min(float(r[4]) for r in rows)
    print(f"min ratio {worst:.2f} (target >= 0.80): {'OK' if worst >= 0.8 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
