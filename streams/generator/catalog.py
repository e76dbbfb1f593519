"""Reference data the stories draw from (SKUs, markets, channels, warehouses, carriers) and a
seeded id factory that mimics the id formats of the real systems."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

# (sku, title, unit price in minor units of any currency)
SKUS: tuple[tuple[str, str, int], ...] = (
    ("MUG-STONE-12", "Stoneware mug 12oz", 1_800),
    ("TEE-ORG-M-BLK", "Organic tee M black", 2_900),
    ("TEE-ORG-L-WHT", "Organic tee L white", 2_900),
    ("HOOD-FLC-M-GRY", "Fleece hoodie M grey", 6_500),
    ("BTL-STEEL-750", "Steel bottle 750ml", 3_400),
    ("CAP-WOOL-NVY", "Wool cap navy", 2_400),
    ("SOCK-MRN-3PK", "Merino socks 3-pack", 2_200),
    ("BAG-CNVS-TOTE", "Canvas tote", 1_900),
    ("LAMP-DESK-LED", "LED desk lamp", 5_900),
    ("BOOK-CERAMICS", "Ceramics handbook", 3_500),
    ("KNIFE-CHEF-8", "Chef knife 8in", 8_900),
    ("PAN-CAST-10", "Cast iron pan 10in", 4_500),
)
# Substitutes a warehouse sends when the ordered SKU is out (same price unless given).
SUBSTITUTES: dict[str, tuple[str, int | None]] = {
    "TEE-ORG-M-BLK": ("TEE-ORG-M-NVY", None),
    "TEE-ORG-L-WHT": ("TEE-ORG-L-GRY", None),
    "HOOD-FLC-M-GRY": ("HOOD-FLC-M-BLK", None),
    "MUG-STONE-12": ("MUG-STONE-16", 2_000),
    "CAP-WOOL-NVY": ("CAP-WOOL-BLK", None),
}

# country -> (currency, tax rate bps, prices include tax)
MARKETS: dict[str, tuple[str, int, bool]] = {
    "US": ("USD", 825, False),
    "CA": ("CAD", 1_300, False),
    "GB": ("GBP", 2_000, True),
    "DE": ("EUR", 1_900, True),
    "FR": ("EUR", 2_000, True),
    "NL": ("EUR", 2_100, True),
}
MARKET_WEIGHTS: dict[str, float] = {"US": 0.55, "CA": 0.08, "GB": 0.14, "DE": 0.12, "FR": 0.06,
                                    "NL": 0.05}
# What a mismatched settlement currency looks like from each order currency.
OTHER_CURRENCY: dict[str, str] = {"USD": "CAD", "CAD": "USD", "GBP": "EUR", "EUR": "GBP"}


@dataclass(frozen=True)
class Channel:
    source_system: str
    channel: str
    providers: tuple[tuple[str, float], ...]  # (settlement provider, weight)
    weight: float


CHANNELS: tuple[Channel, ...] = (
    Channel("shopify", "web", (("shopify_payments", 0.8), ("paypal", 0.2)), 0.45),
    Channel("shopify", "mobile_app", (("shopify_payments", 0.9), ("paypal", 0.1)), 0.12),
    Channel("amazon", "marketplace", (("amazon", 1.0),), 0.28),
    Channel("commercetools", "web", (("stripe", 0.85), ("paypal", 0.15)), 0.10),
    Channel("commercetools", "phone", (("stripe", 1.0),), 0.05),
)

# (source_system of the feed, facility code)
WAREHOUSES: tuple[tuple[str, str], ...] = (
    ("wms-east", "EWR1"),
    ("wms-west", "ONT2"),
    ("3pl-acme", "ACME-DAL"),
    ("3pl-shipbob", "SB-CHI3"),
)
FBA_WAREHOUSE = ("amazon-fba", "PHX7")
CARRIERS: dict[str, tuple[str, ...]] = {
    "US": ("ups", "fedex", "usps"),
    "CA": ("canadapost", "ups"),
    "GB": ("royalmail", "dhl", "evri"),
    "DE": ("dhl", "dpd"),
    "FR": ("colissimo", "dpd"),
    "NL": ("postnl", "dhl"),
}
RETURNS_PLATFORMS = ("loop-returns", "shopify", "narvar")
RETURN_CENTERS = ("RC-EWR", "RC-RNO")
RETURN_REASONS = ("no_longer_needed", "wrong_size", "damaged", "not_as_described", "wrong_item")
EXCEPTION_REASONS = ("weather", "address_issue", "damaged", "carrier_delay", "lost")
CANCEL_REASONS = ("customer", "fraud", "payment_declined", "inventory")

# service level -> (ship-by hours, deliver-by hours, carrier transit hours min/max)
SERVICE_LEVELS: dict[str, tuple[int, int, int, int]] = {
    "standard": (48, 144, 24, 96),
    "express": (24, 72, 12, 40),
    "next_day": (16, 40, 10, 20),
}
SERVICE_WEIGHTS: dict[str, float] = {"standard": 0.75, "express": 0.18, "next_day": 0.07}
CARRIER_SERVICE = {"standard": "ground", "express": "2day", "next_day": "overnight"}


def new_uuid(rng: random.Random) -> str:
    """A random (version 4) UUID from ``rng``; formatted by hand, uuid.UUID is slow here."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


class Ids:
    """Id formats of the real systems, drawn from one seeded ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def uuid(self) -> str:
        return new_uuid(self.rng)

    def digits(self, n: int) -> str:
        return "".join(self.rng.choices(string.digits, k=n))

    def alnum(self, n: int, alphabet: str = string.ascii_uppercase + string.digits) -> str:
        return "".join(self.rng.choices(alphabet, k=n))

    def order_id(self) -> str:
        return f"ord_{self.alnum(12, string.ascii_lowercase + string.digits)}"

    def external_order_ref(self, source_system: str, seq: int) -> str:
        if source_system == "amazon":
            return f"11{self.digits(1)}-{self.digits(7)}-{self.digits(7)}"
        if source_system == "shopify":
            return f"#{1_001 + seq}"
        return f"CT-{100_000 + seq}"

    def customer_ref(self) -> str | None:
        return None if self.rng.random() < 0.15 else f"cus_{self.alnum(10)}"

    def shipment_id(self, facility: str) -> str:
        return f"SH-{facility}-{self.digits(8)}"

    def tracking_number(self, carrier: str) -> str:
        if carrier == "ups":
            return f"1Z{self.alnum(6)}{self.digits(10)}"
        if carrier == "usps":
            return f"9400{self.digits(18)}"
        if carrier == "royalmail":
            return f"{self.alnum(2, string.ascii_uppercase)}{self.digits(9)}GB"
        if carrier == "amzl":
            return f"TBA{self.digits(12)}"
        return self.digits(12)

    def return_id(self) -> str:
        return f"RMA-{self.digits(7)}"

    def settlement_line_id(self, provider: str) -> str:
        if provider == "stripe":
            return f"txn_{self.alnum(24, string.ascii_letters + string.digits)}"
        if provider == "paypal":
            return self.alnum(17)
        if provider == "amazon":
            return f"AMZ-{self.digits(14)}"
        return self.digits(13)  # Shopify Payments balance transaction id
