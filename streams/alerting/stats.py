"""Delivery counters, per receiver, as plain ints (a Prometheus collector reads ``as_dict``).

Counts are per (record, receiver): one alert record sent to two receivers counts twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

COUNTERS = ("delivered", "failed", "retried", "silenced", "undecodable")


@dataclass
class ReceiverStats:
    delivered: int = 0  # the receiver answered 2xx
    failed: int = 0  # given up: rejected (4xx) or still failing at the give-up age
    retried: int = 0  # attempts after the first one
    silenced: int = 0  # not sent because a silence matched
    undecodable: int = 0  # not an SlaAlert we can read: skipped, logged
    breaker_state: str = "closed"
    breaker_opened: int = 0  # times the circuit opened


@dataclass
class DeliveryStats:
    receivers: dict[str, ReceiverStats] = field(default_factory=dict)
    silences_loaded: int = 0  # silences known (active or not) after the last re-read
    silences_loaded_at: float | None = None  # epoch seconds of that re-read (staleness)

    def silences_read(self, silences: list[Any]) -> None:
        self.silences_loaded, self.silences_loaded_at = len(silences), time.time()

    def receiver(self, name: str) -> ReceiverStats:
        return self.receivers.setdefault(name, ReceiverStats())

    def total(self, counter: str) -> int:
        return sum(getattr(r, counter) for r in self.receivers.values())

    def as_dict(self) -> dict[str, Any]:
        """``{"delivered": n, ..., "silences_loaded": n, "receivers": {name: {...}}}``."""
        out: dict[str, Any] = {name: self.total(name) for name in COUNTERS}
        out["silences_loaded"] = self.silences_loaded
        out["silences_loaded_at"] = self.silences_loaded_at
        out["receivers"] = {name: dict(vars(r)) for name, r in sorted(self.receivers.items())}
        return out
